/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng with MSI-X: negotiate VERSION_1, one queue in probe memory, requests answered
 * with an MSI-X interrupt, random bytes that differ between requests, a descriptor chain, an
 * indirect table (if offered), and MSI-X masking (pending bit set while masked, delivery on
 * unmask).
 */
#include "virtio.h"

PROBE("virtio_rng");

#define VEC_CONFIG 0x70
#define VEC_QUEUE 0x71
#define REQ 64

static volatile uint32_t queue_irqs, config_irqs;
static struct vdev v;
static struct vq q;
static uint8_t *buf;

static void on_queue(struct trap_frame *f)
{
	(void)f;
	queue_irqs++;
	lapic_eoi();
}

static void on_config(struct trap_frame *f)
{
	(void)f;
	config_irqs++;
	lapic_eoi();
}

static bool wait_for(volatile uint32_t *ctr, uint32_t want, uint64_t us)
{
	uint64_t end = time_us() + us;
	while (*ctr < want)
		if (time_us() > end)
			return false;
	return true;
}

/* Submit the chain at head, wait for its interrupt and used element; returns used len. */
static uint32_t request(uint16_t head, const char *what)
{
	uint32_t before = queue_irqs, id, len;
	vq_submit(&q, head);
	CHECK(wait_for(&queue_irqs, before + 1, 1000000),
	      "%s: no MSI-X interrupt in 1 s (used idx %u, status 0x%x)", what, vq_used_idx(&q),
	      vdev_status(&v));
	CHECK(vq_pop_used(&q, &id, &len), "%s: interrupt but no used element", what);
	CHECK(id == head, "%s: used id %u, submitted %u", what, id, head);
	CHECK(!(vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET), "%s: device needs reset", what);
	return len;
}

static bool nonzero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return true;
	return false;
}

void probe_main(const struct hvm_start_info *si)
{
	uint32_t len, len2, id;
	uint64_t pba;
	(void)si;

	CHECK(vdev_open(&v, VIRTIO_ID_RNG_MODERN), "no virtio-rng (1af4:1044) on bus 0");
	CHECK(v.msix_cap && v.msix_entries >= 2, "virtio-rng: MSI-X missing or too small");
	CHECK(vdev_negotiate(&v, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC), "feature negotiation");
	printf("virtio_rng: offered 0x%lx, negotiated 0x%lx\n", v.offered, v.negotiated);
	CHECK(v.negotiated & VIRTIO_F_VERSION_1, "VERSION_1 not offered");
	irq_set_handler(VEC_CONFIG, on_config);
	irq_set_handler(VEC_QUEUE, on_queue);
	vdev_msix_enable(&v);
	vdev_msix_set(&v, 0, VEC_CONFIG, (uint8_t)lapic_id());
	vdev_msix_set(&v, 1, VEC_QUEUE, (uint8_t)lapic_id());
	mmio_write16(v.common + VCC_MSIX_CONFIG, 0);
	CHECK(mmio_read16(v.common + VCC_MSIX_CONFIG) == 0, "msix_config reads 0x%x after writing 0",
	      mmio_read16(v.common + VCC_MSIX_CONFIG));
	CHECK(vq_setup(&v, &q, 0, 0, 1), "queue 0 setup");
	printf("virtio_rng: queue 0 size %u, notify at 0x%lx\n", q.size, q.notify_addr);
	vdev_driver_ok(&v);
	CHECK(vdev_status(&v) == (VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
				  VIRTIO_STATUS_DRIVER_OK),
	      "status 0x%x after DRIVER_OK", vdev_status(&v));
	irq_enable();

	buf = probe_alloc(4 * REQ + 64, 64);
	memset(buf, 0, 4 * REQ);

	/* two plain requests */
	q.desc[0].addr = (uint64_t)(uintptr_t)buf;
	q.desc[0].len = REQ;
	q.desc[0].flags = VRING_DESC_F_WRITE;
	len = request(0, "request 1");
	q.desc[1].addr = (uint64_t)(uintptr_t)(buf + REQ);
	q.desc[1].len = REQ;
	q.desc[1].flags = VRING_DESC_F_WRITE;
	len2 = request(1, "request 2");
	printf("virtio_rng: got %u and %u bytes, %u queue interrupt(s)\n", len, len2, queue_irqs);
	CHECK(len > 0 && len <= REQ && len2 > 0 && len2 <= REQ, "used lengths %u and %u for %u-byte buffers",
	      len, len2, REQ);
	CHECK(nonzero(buf, len) && nonzero(buf + REQ, len2), "all-zero random bytes");
	CHECK(len < 8 || len2 < 8 || memcmp(buf, buf + REQ, 8), "two requests returned the same bytes");
	CHECK(!nonzero(buf + len, REQ - len), "device wrote past its used length");

	/* a chain of three writable descriptors */
	memset(buf, 0, 4 * REQ);
	for (uint16_t i = 0; i < 3; i++) {
		q.desc[2 + i].addr = (uint64_t)(uintptr_t)(buf + 16 * i);
		q.desc[2 + i].len = 16;
		q.desc[2 + i].flags = VRING_DESC_F_WRITE | (i < 2 ? VRING_DESC_F_NEXT : 0);
		q.desc[2 + i].next = (uint16_t)(3 + i);
	}
	len = request(2, "chain of 3");
	printf("virtio_rng: chain of 3 x 16 bytes: %u bytes\n", len);
	CHECK(len > 0 && len <= 48, "chain: used len %u", len);
	CHECK(!nonzero(buf + len, 48 - len) && nonzero(buf, len), "chain: bytes not where used len says");

	if (v.negotiated & VIRTIO_F_INDIRECT_DESC) {
		struct vring_desc *t = probe_alloc(2 * sizeof(*t), 16);
		memset(buf, 0, 4 * REQ);
		t[0] = (struct vring_desc){ (uint64_t)(uintptr_t)buf, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1 };
		t[1] = (struct vring_desc){ (uint64_t)(uintptr_t)(buf + 8), 8, VRING_DESC_F_WRITE, 0 };
		q.desc[5].addr = (uint64_t)(uintptr_t)t;
		q.desc[5].len = 2 * sizeof(*t);
		q.desc[5].flags = VRING_DESC_F_INDIRECT;
		len = request(5, "indirect");
		printf("virtio_rng: indirect 2 x 8 bytes: %u bytes\n", len);
		CHECK(len > 0 && len <= 16 && nonzero(buf, len), "indirect: used len %u", len);
	}

	/* MSI-X entry masked: no interrupt, pending bit set; unmask delivers it */
	pba = 0;
	{
		uint32_t p = pci_read32(&v.pci, v.msix_cap + 8);
		uint64_t base, size;
		bool assigned;
		CHECK(pci_bar(&v.pci, p & 7, &base, &size, &assigned), "PBA BAR %u", p & 7);
		pba = base + (p & ~7u);
	}
	mmio_write32(v.msix_table + 16 + 12, 1);
	len = queue_irqs;
	q.desc[0].len = 8;
	vq_submit(&q, 0);
	{
		uint64_t end = time_us() + 1000000;
		while (vq_used_idx(&q) == q.last_used && time_us() < end)
			cpu_relax();
	}
	CHECK(vq_pop_used(&q, &id, &len2), "masked: request not completed in 1 s");
	udelay(20000);
	CHECK(queue_irqs == len, "interrupt delivered through a masked MSI-X entry");
	CHECK(mmio_read32(pba) & 2, "masked MSI-X entry: PBA bit not set (PBA 0x%x)", mmio_read32(pba));
	mmio_write32(v.msix_table + 16 + 12, 0);
	CHECK(wait_for(&queue_irqs, len + 1, 100000), "pending MSI-X not delivered on unmask");
	CHECK(!(mmio_read32(pba) & 2), "PBA bit still set after delivery");

	CHECK(config_irqs == 0, "%u unexpected config-change interrupts", config_irqs);
	irq_disable();
	CHECK(vdev_reset(&v), "device reset does not complete");
	probe_pass();
}
