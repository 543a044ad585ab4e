/* SPDX-License-Identifier: MIT */
/*
 * Hostile virtio driver: after a working setup, feed the virtio core malformed rings. For each
 * case the device must not complete the request as if it were valid (it should set
 * DEVICE_NEEDS_RESET or fail/ignore the request), the VMM must stay alive (console, PCI host
 * bridge, CMOS still answer), and after a device reset the device must work again.
 */
#include "virtio.h"

PROBE("virtio_hostile");

#define VEC_CONFIG 0x70
#define VEC_QUEUE 0x71
#define QSIZE 8
#define FAR_AWAY 0x7f0000000000ull /* canonical, far beyond RAM */
#define OBSERVE_US 200000

static volatile uint32_t queue_irqs, config_irqs;
static struct vdev v;
static struct vq q;
static uint8_t *buf;
static uint64_t ram_end;
static uint32_t host_bridge_id;

/* MUST_FAIL_RAM: a buffer outside guest RAM. Vireo must refuse it (gmem_ptr covers RAM only);
 * QEMU accepts it (writes to non-RAM are bounced and dropped), so under "qemu" it is info. */
enum expect { MUST_FAIL, MUST_FAIL_RAM, MAY_COMPLETE };
static bool qemu;

struct outcome {
	bool needs_reset;
	unsigned used;	  /* used elements produced */
	uint32_t max_len; /* largest used len */
};

static void on_irq(struct trap_frame *f)
{
	if (f->vector == VEC_QUEUE)
		queue_irqs++;
	else
		config_irqs++;
	lapic_eoi();
}

static uint64_t a(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	q.desc[i].addr = addr;
	q.desc[i].len = len;
	q.desc[i].flags = flags;
	q.desc[i].next = next;
}

static void setup(const char *after)
{
	CHECK(vdev_negotiate(&v, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC),
	      "feature negotiation fails after %s", after);
	vdev_msix_set(&v, 0, VEC_CONFIG, (uint8_t)lapic_id());
	vdev_msix_set(&v, 1, VEC_QUEUE, (uint8_t)lapic_id());
	mmio_write16(v.common + VCC_MSIX_CONFIG, 0);
	CHECK(vq_setup(&v, &q, 0, QSIZE, 1), "queue setup fails after %s", after);
	vdev_driver_ok(&v);
	CHECK(vdev_status(&v) == 0x0f, "status 0x%x after DRIVER_OK (after %s)", vdev_status(&v), after);
}

/* A valid request must complete with random bytes. */
static void sane_request(const char *after)
{
	uint64_t end = time_us() + 1000000;
	uint32_t id, len;
	memset(buf, 0, 64);
	desc(0, a(buf), 32, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 0);
	while (!vq_pop_used(&q, &id, &len))
		CHECK(time_us() < end, "device does not answer a valid request after %s (status 0x%x)",
		      after, vdev_status(&v));
	CHECK(id == 0 && len > 0 && len <= 32, "valid request after %s: used id %u len %u", after, id, len);
}

static void alive(const char *after)
{
	CHECK(mmio_read32(pci_ecam_base()) == host_bridge_id, "PCI host bridge reads 0x%x after %s",
	      mmio_read32(pci_ecam_base()), after);
	CHECK(cmos_read(0x0d) & 0x80, "CMOS register D reads 0x%x after %s", cmos_read(0x0d), after);
	CHECK(pci_read16(&v.pci, 0) == VIRTIO_VENDOR, "virtio config space gone after %s", after);
}

static struct outcome observe(void)
{
	struct outcome o = { 0 };
	uint64_t end = time_us() + OBSERVE_US;
	uint32_t id, len;
	while (time_us() < end) {
		while (vq_pop_used(&q, &id, &len)) {
			o.used++;
			if (len > o.max_len)
				o.max_len = len;
		}
		if (vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET)
			o.needs_reset = true;
		cpu_relax();
	}
	return o;
}

/* Run one case: `legit` is the most bytes the request may have had room for (0: none). */
static void run_case(const char *name, enum expect ex, uint32_t legit, void (*fn)(void))
{
	struct outcome o;
	const char *verdict;
	setup(name);
	fn();
	o = observe();
	if (o.needs_reset)
		verdict = "NEEDS_RESET";
	else if (!o.used)
		verdict = "ignored";
	else if (o.max_len == 0)
		verdict = "failed (used len 0)";
	else
		verdict = "COMPLETED";
	printf("virtio_hostile: %-22s -> %s (used %u, max len %u, status 0x%x, config irqs %u)\n", name,
	       verdict, o.used, o.max_len, vdev_status(&v), config_irqs);
	if (ex == MUST_FAIL_RAM && qemu)
		ex = MAY_COMPLETE;
	else
		CHECK(o.max_len <= legit, "%s: device reports %u bytes written, buffers hold %u", name,
		      o.max_len, legit);
	if (ex != MAY_COMPLETE)
		CHECK(o.needs_reset || o.max_len == 0, "%s: accepted as valid (used len %u)", name, o.max_len);
	alive(name);
	CHECK(vdev_reset(&v), "device reset does not complete after %s", name);
	setup(name);
	sane_request(name);
	CHECK(vdev_reset(&v), "device reset does not complete after %s", name);
}

/* ---- the cases ---------------------------------------------------------------------------- */
static void c_loop(void)
{
	desc(0, a(buf), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(1, a(buf + 16), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
	vq_submit(&q, 0);
}

static void c_ring_cycle(void) /* every descriptor chained, the last back to the first */
{
	for (uint16_t i = 0; i < QSIZE; i++)
		desc(i, a(buf + 4 * i), 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, (uint16_t)((i + 1) % QSIZE));
	vq_submit(&q, 0);
}

static void c_next_oob(void)
{
	desc(0, a(buf), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 100);
	vq_submit(&q, 0);
}

static void c_head_oob(void)
{
	desc(0, a(buf), 16, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 200);
}

static void c_addr_far(void)
{
	desc(0, FAR_AWAY, 16, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 0);
}

static void c_addr_mmio(void)
{
	desc(0, LAYOUT_LAPIC, 16, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 0);
}

static void c_addr_ram_end(void) /* starts in RAM, ends beyond it */
{
	desc(0, ram_end - 8, 16, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 0);
}

static void c_addr_overflow(void)
{
	desc(0, 0xfffffffffffffff0ull, 0x20, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 0);
}

static void c_len_huge(void)
{
	desc(0, a(buf), 0xffffffff, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 0);
}

static void c_zero_len(void)
{
	desc(0, a(buf), 0, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 0);
}

static void c_w_then_r(void)
{
	desc(0, a(buf), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(1, a(buf + 16), 16, 0, 0);
	vq_submit(&q, 0);
}

static void c_avail_jump(void)
{
	desc(0, a(buf), 4, VRING_DESC_F_WRITE, 0);
	for (uint16_t i = 0; i < QSIZE; i++)
		q.avail->ring[i] = 0;
	mb();
	q.avail_idx = (uint16_t)(q.avail_idx + QSIZE + 3);
	q.avail->idx = q.avail_idx;
	vq_notify(&q);
}

static struct vring_desc *itab;

static void c_indirect_nested(void)
{
	struct vring_desc *inner = itab + 8;
	inner[0] = (struct vring_desc){ a(buf), 16, VRING_DESC_F_WRITE, 0 };
	itab[0] = (struct vring_desc){ a(inner), sizeof(*inner), VRING_DESC_F_INDIRECT, 0 };
	desc(0, a(itab), sizeof(*itab), VRING_DESC_F_INDIRECT, 0);
	vq_submit(&q, 0);
}

static void c_indirect_loop(void)
{
	itab[0] = (struct vring_desc){ a(buf), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1 };
	itab[1] = (struct vring_desc){ a(buf + 8), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0 };
	desc(0, a(itab), 2 * sizeof(*itab), VRING_DESC_F_INDIRECT, 0);
	vq_submit(&q, 0);
}

static void c_indirect_badlen(void)
{
	itab[0] = (struct vring_desc){ a(buf), 8, VRING_DESC_F_WRITE, 0 };
	desc(0, a(itab), 24, VRING_DESC_F_INDIRECT, 0); /* not a multiple of 16 */
	vq_submit(&q, 0);
}

static void c_indirect_far(void)
{
	desc(0, FAR_AWAY, 64, VRING_DESC_F_INDIRECT, 0);
	vq_submit(&q, 0);
}

static void c_indirect_next(void) /* INDIRECT together with NEXT */
{
	itab[0] = (struct vring_desc){ a(buf), 8, VRING_DESC_F_WRITE, 0 };
	desc(0, a(itab), sizeof(*itab), VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	desc(1, a(buf + 8), 8, VRING_DESC_F_WRITE, 0);
	vq_submit(&q, 0);
}

static void c_indirect_long(void) /* a linear indirect chain longer than the queue */
{
	for (uint16_t i = 0; i < 2 * QSIZE; i++)
		itab[i] = (struct vring_desc){ a(buf + 4 * i), 4,
					       (uint16_t)(VRING_DESC_F_WRITE | (i + 1 < 2 * QSIZE ? VRING_DESC_F_NEXT : 0)),
					       (uint16_t)(i + 1) };
	desc(0, a(itab), 2 * QSIZE * sizeof(*itab), VRING_DESC_F_INDIRECT, 0);
	vq_submit(&q, 0);
}

static void c_notify_bad_queue(void)
{
	mmio_write16(q.notify_addr, 7); /* no such queue */
	mmio_write16(v.notify, 0xffff);
}

/* Queue rings outside RAM: set after the normal setup by reprogramming queue 0 before
 * DRIVER_OK is impossible, so do a full bad setup here. */
static void bad_ring_setup(void)
{
	uint8_t st;
	struct outcome o;
	CHECK(vdev_negotiate(&v, VIRTIO_F_VERSION_1), "feature negotiation (bad rings)");
	mmio_write16(v.common + VCC_Q_SELECT, 0);
	mmio_write16(v.common + VCC_Q_SIZE, QSIZE);
	mmio_write16(v.common + VCC_Q_MSIX, 1);
	mmio_write64(v.common + VCC_Q_DESC, FAR_AWAY);
	mmio_write64(v.common + VCC_Q_AVAIL, 0xfffffffffffff000ull);
	mmio_write64(v.common + VCC_Q_USED, LAYOUT_IOAPIC);
	mmio_write16(v.common + VCC_Q_ENABLE, 1);
	vdev_driver_ok(&v);
	mmio_write16(q.notify_addr, 0);
	o = observe();
	st = vdev_status(&v);
	printf("virtio_hostile: %-22s -> status 0x%x (queue_enable reads %u)\n", "rings outside RAM", st,
	       mmio_read16(v.common + VCC_Q_ENABLE));
	CHECK(!o.used, "rings outside RAM produced used elements");
	alive("rings outside RAM");
	CHECK(vdev_reset(&v), "device reset does not complete after rings outside RAM");
	setup("rings outside RAM");
	sane_request("rings outside RAM");
	CHECK(vdev_reset(&v), "device reset does not complete");
}

static void bad_queue_select(void)
{
	uint16_t nq;
	CHECK(vdev_negotiate(&v, VIRTIO_F_VERSION_1), "feature negotiation (queue select)");
	nq = mmio_read16(v.common + VCC_NUM_QUEUES);
	mmio_write16(v.common + VCC_Q_SELECT, nq + 5);
	CHECK(mmio_read16(v.common + VCC_Q_SIZE) == 0, "queue %u (of %u) has size %u", nq + 5, nq,
	      mmio_read16(v.common + VCC_Q_SIZE));
	mmio_write64(v.common + VCC_Q_DESC, a(buf));
	mmio_write16(v.common + VCC_Q_ENABLE, 1);
	vdev_driver_ok(&v);
	mmio_write16(v.notify, (uint16_t)(nq + 5));
	mmio_write16(v.common + VCC_Q_SELECT, 0xffff);
	(void)mmio_read64(v.common + VCC_Q_DESC);
	alive("bad queue select");
	printf("virtio_hostile: %-22s -> ok\n", "bad queue select");
	CHECK(vdev_reset(&v), "device reset does not complete after bad queue select");
}

/* Many malformed requests in a row: the VMM must stay responsive and keep its log bounded
 * (the runner limits stderr lines): guest-triggered messages are rate-limited. */
static void flood(unsigned n)
{
	unsigned flagged = 0;
	uint64_t t0 = time_us();
	for (unsigned i = 0; i < n; i++) {
		uint64_t end;
		setup("flood");
		c_loop();
		end = time_us() + 50000;
		while (!(vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET) && time_us() < end)
			cpu_relax();
		if (vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET)
			flagged++;
		CHECK(vdev_reset(&v), "device reset does not complete during the flood");
	}
	printf("virtio_hostile: flood of %u looping chains: %u flagged NEEDS_RESET, %lu ms\n", n,
	       flagged, (time_us() - t0) / 1000);
	alive("flood");
	setup("flood");
	sane_request("flood");
	CHECK(vdev_reset(&v), "device reset does not complete after the flood");
}

void probe_main(const struct hvm_start_info *si)
{
	(void)si;
	ram_end = cmdline_u64("mem", 64) << 20;
	qemu = cmdline_has("qemu");
	CHECK(vdev_open(&v, VIRTIO_ID_RNG_MODERN), "no virtio-rng (1af4:1044) on bus 0");
	CHECK(v.msix_cap && v.msix_entries >= 2, "virtio-rng: MSI-X missing or too small");
	host_bridge_id = mmio_read32(pci_ecam_base());
	buf = probe_alloc(4096, 4096);
	itab = probe_alloc(64 * sizeof(*itab), 16);
	irq_set_handler(VEC_CONFIG, on_irq);
	irq_set_handler(VEC_QUEUE, on_irq);
	vdev_msix_enable(&v);
	irq_enable();

	setup("start");
	sane_request("start");
	CHECK(vdev_reset(&v), "device reset does not complete");

	run_case("descriptor loop", MUST_FAIL, 32, c_loop);
	run_case("chain of all + cycle", MUST_FAIL, 4 * QSIZE, c_ring_cycle);
	run_case("next out of range", MUST_FAIL, 16, c_next_oob);
	run_case("head out of range", MUST_FAIL, 0, c_head_oob);
	run_case("addr beyond RAM", MUST_FAIL_RAM, 0, c_addr_far);
	if (!qemu) /* QEMU would really write random bytes into the LAPIC */
		run_case("addr in MMIO (LAPIC)", MUST_FAIL_RAM, 0, c_addr_mmio);
	run_case("addr across RAM end", MUST_FAIL_RAM, 0, c_addr_ram_end);
	run_case("addr+len overflows", MUST_FAIL_RAM, 0, c_addr_overflow);
	if (!qemu) /* QEMU would fill RAM from buf upwards (this probe included) */
		run_case("len 4 GiB - 1", MUST_FAIL_RAM, 4096, c_len_huge);
	run_case("zero-length", MAY_COMPLETE, 0, c_zero_len);
	run_case("writable then readable", MUST_FAIL, 16, c_w_then_r);
	run_case("avail idx jump > size", MUST_FAIL, 4, c_avail_jump);
	if (v.offered & VIRTIO_F_INDIRECT_DESC) {
		run_case("indirect in indirect", MUST_FAIL, 16, c_indirect_nested);
		run_case("indirect loop", MUST_FAIL, 16, c_indirect_loop);
		run_case("indirect len % 16", MUST_FAIL, 8, c_indirect_badlen);
		run_case("indirect beyond RAM", MUST_FAIL_RAM, 0, c_indirect_far);
		run_case("indirect with NEXT", MAY_COMPLETE, 16, c_indirect_next);
		run_case("indirect longer than q", MAY_COMPLETE, 8 * QSIZE, c_indirect_long);
	} else {
		printf("virtio_hostile: INDIRECT_DESC not offered; indirect cases skipped\n");
	}
	run_case("notify bad queue", MAY_COMPLETE, 0, c_notify_bad_queue);
	bad_ring_setup();
	bad_queue_select();
	flood(150);

	setup("all cases");
	sane_request("all cases");
	irq_disable();
	CHECK(vdev_reset(&v), "final reset");
	probe_pass();
}
