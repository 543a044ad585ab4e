/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk from a guest driver's side, on a disk the runner made (run_probe.py --disk):
 * configuration, reading what the runner wrote, writing patterns and reading them back,
 * flush, GET_ID, write-zeroes and discard, then hostile requests (out of range, overflowing,
 * misaligned, short or writable header, unknown type, bad segment flags, a buffer over the
 * ring, no status byte), each answered with the right status while the VMM stays healthy.
 * Finally a marker is written and flushed for the runner to find in the file.
 *
 * Command line: disk=<bytes> (the runner's disk size), serial=<S> (expected GET_ID).
 */
#include "virtio.h"

PROBE("virtio_blk");

#define VIRTIO_ID_BLK_MODERN 0x1042
#define VEC_CONFIG 0x70
#define VEC_QUEUE 0x71
#define QSIZE 64

#define F_SEG_MAX (1ull << 2)
#define F_RO (1ull << 5)
#define F_BLK_SIZE (1ull << 6)
#define F_FLUSH (1ull << 9)
#define F_CONFIG_WCE (1ull << 11)
#define F_DISCARD (1ull << 13)
#define F_WRITE_ZEROES (1ull << 14)

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define NO_ANSWER 0xee /* status byte untouched */

#define DATA 65536
#define MARKER "VIREO-PROBE-DISK-OK"
#define MARKER_SECTOR 100

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};
struct seg {
	uint64_t sector;
	uint32_t num, flags;
};

static volatile uint32_t queue_irqs, config_irqs;
static struct vdev v;
static struct vq q;
static struct hdr *hd;
static uint8_t *st, *wbuf, *rbuf;
static struct seg *segs;
static uint64_t capacity;
static uint32_t host_bridge_id;

static void on_irq(struct trap_frame *f)
{
	if (f->vector == VEC_QUEUE)
		queue_irqs++;
	else
		config_irqs++;
	lapic_eoi();
}

static uint64_t a(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* What the runner wrote in the first and last 64 sectors (zeroes elsewhere). */
static uint8_t disk_pat(uint64_t off)
{
	return (uint8_t)((off >> 9) * 7 + (off & 511) * 3 + 1);
}

static uint8_t my_pat(uint64_t off, unsigned seed)
{
	return (uint8_t)((off >> 9) * 11 + (off & 511) + seed);
}

static void up(const char *after)
{
	CHECK(vdev_negotiate(&v, VIRTIO_F_VERSION_1 | F_FLUSH | F_BLK_SIZE | F_SEG_MAX | F_DISCARD |
					 F_WRITE_ZEROES | F_CONFIG_WCE | VIRTIO_F_INDIRECT_DESC),
	      "feature negotiation fails (%s)", after);
	vdev_msix_set(&v, 0, VEC_CONFIG, (uint8_t)lapic_id());
	vdev_msix_set(&v, 1, VEC_QUEUE, (uint8_t)lapic_id());
	mmio_write16(v.common + VCC_MSIX_CONFIG, 0);
	CHECK(vq_setup(&v, &q, 0, QSIZE, 1), "queue setup fails (%s)", after);
	vdev_driver_ok(&v);
	CHECK(vdev_status(&v) == 0x0f, "status 0x%x after DRIVER_OK (%s)", vdev_status(&v), after);
}

/* Descriptor i of the chain at head 0; flags as given (NEXT links it to i + 1). */
static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags)
{
	q.desc[i].addr = addr;
	q.desc[i].len = len;
	q.desc[i].flags = flags;
	q.desc[i].next = (uint16_t)(i + 1);
}

/* Publish the chain at head 0, wait (bounded) for its used element; returns the used len or
 * -1 if none came. */
/* Publish the chain at head 0, wait (bounded) for its used element; returns the used len or
 * -1 if none came. */
static int64_t run(void)
{
	uint64_t end = time_us() + 2000000;
	uint32_t id, len;
	vq_submit(&q, 0);
	while (!vq_pop_used(&q, &id, &len)) {
		if (time_us() > end)
			return -1;
		cpu_relax();
	}
	CHECK(id == 0, "used id %u, submitted 0", id);
	return len;
}

/* header + data (len 0: none) + status; returns the status byte. */
static uint8_t req(uint32_t type, uint64_t sector, void *data, uint32_t len, bool dev_writes)
{
	hd->type = type;
	hd->reserved = 0;
	hd->sector = sector;
	*st = NO_ANSWER;
	desc(0, a(hd), sizeof(*hd), VRING_DESC_F_NEXT);
	uint16_t n = 1;
	if (len) {
		desc(n, a(data), len, VRING_DESC_F_NEXT | (dev_writes ? VRING_DESC_F_WRITE : 0));
		n++;
	}
	desc(n, a(st), 1, VRING_DESC_F_WRITE);
	int64_t used = run();
	CHECK(used >= 1, "request type %u sector %lu: no answer (device status 0x%x)", type, sector,
	      vdev_status(&v));
	return *st;
}

static void alive(const char *after)
{
	CHECK(mmio_read32(pci_ecam_base()) == host_bridge_id, "PCI host bridge reads 0x%x after %s",
	      mmio_read32(pci_ecam_base()), after);
	CHECK(cmos_read(0x0d) & 0x80, "CMOS register D reads 0x%x after %s", cmos_read(0x0d), after);
	CHECK(!(vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET), "device needs reset after %s", after);
}

static void expect(const char *what, uint8_t got, uint8_t want)
{
	printf("virtio_blk: %-34s -> status %u\n", what, got);
	CHECK(got == want, "%s: status %u, expected %u", what, got, want);
	alive(what);
}

static void check_initial_content(void)
{
	CHECK(req(T_IN, 0, rbuf, 32768, true) == S_OK, "reading sectors 0-63");
	for (uint32_t i = 0; i < 32768; i++)
		CHECK(rbuf[i] == disk_pat(i), "disk byte %u reads 0x%x, runner wrote 0x%x", i, rbuf[i],
		      disk_pat(i));
	uint64_t last = (capacity - 1) * 512;
	CHECK(req(T_IN, capacity - 1, rbuf, 512, true) == S_OK, "reading the last sector");
	for (uint32_t i = 0; i < 512; i++)
		CHECK(rbuf[i] == disk_pat(last + i), "last sector byte %u reads 0x%x", i, rbuf[i]);
	CHECK(req(T_IN, capacity / 2, rbuf, 4096, true) == S_OK, "reading the middle");
	for (uint32_t i = 0; i < 4096; i++)
		CHECK(rbuf[i] == 0, "middle of the sparse disk: byte %u is 0x%x", i, rbuf[i]);
}

static void write_read_flush(void)
{
	const uint64_t sec = 2048;
	for (uint32_t i = 0; i < DATA; i++)
		wbuf[i] = my_pat(sec * 512 + i, 5);
	/* Write in three descriptors of unequal size. */
	hd->type = T_OUT;
	hd->sector = sec;
	*st = NO_ANSWER;
	desc(0, a(hd), 16, VRING_DESC_F_NEXT);
	desc(1, a(wbuf), 4096, VRING_DESC_F_NEXT);
	desc(2, a(wbuf + 4096), 20480, VRING_DESC_F_NEXT);
	desc(3, a(wbuf + 24576), DATA - 24576, VRING_DESC_F_NEXT);
	desc(4, a(st), 1, VRING_DESC_F_WRITE);
	CHECK(run() >= 1 && *st == S_OK, "64 KiB write in 3 pieces: status %u", *st);
	memset(rbuf, 0, DATA);
	CHECK(req(T_IN, sec, rbuf, DATA, true) == S_OK, "64 KiB read back");
	CHECK(!memcmp(rbuf, wbuf, DATA), "64 KiB read back differs from what was written");
	/* Read one sector from the middle of it, data and status in one descriptor. */
	hd->type = T_IN;
	hd->sector = sec + 17;
	rbuf[512] = NO_ANSWER;
	desc(0, a(hd), 16, VRING_DESC_F_NEXT);
	desc(1, a(rbuf), 513, VRING_DESC_F_WRITE);
	int64_t used = run();
	CHECK(used == 513 && rbuf[512] == S_OK, "read with status in the data buffer: len %ld status %u",
	      used, rbuf[512]);
	CHECK(!memcmp(rbuf, wbuf + 17 * 512, 512), "sector 17 of the write reads back wrong");
	CHECK(req(T_FLUSH, 0, NULL, 0, false) == S_OK, "flush");
	printf("virtio_blk: wrote, read back and flushed 64 KiB\n");
}

static void get_id(void)
{
	char want[24] = "";
	memset(rbuf, 0xcc, 32);
	CHECK(req(T_GET_ID, 0, rbuf, 20, true) == S_OK, "GET_ID");
	if (cmdline_str("serial", want, sizeof(want)))
		CHECK(!strncmp((const char *)rbuf, want, 20) && (strlen(want) == 20 || !rbuf[strlen(want)]),
		      "GET_ID: serial does not read '%s'", want);
	CHECK(rbuf[20] == 0xcc, "GET_ID wrote past its 20 bytes");
	rbuf[20] = 0;
	printf("virtio_blk: serial '%s'\n", (const char *)rbuf);
}

static void zeroes_and_discard(void)
{
	if (v.negotiated & F_WRITE_ZEROES) {
		segs[0] = (struct seg){2048 + 8, 8, 0};
		segs[1] = (struct seg){2048 + 32, 16, 1 /* unmap */};
		expect("write-zeroes, 2 segments", req(T_WRITE_ZEROES, 0, segs, 32, false), S_OK);
		CHECK(req(T_IN, 2048, rbuf, DATA, true) == S_OK, "read after write-zeroes");
		for (uint32_t i = 0; i < DATA; i++) {
			bool zero = (i >= 8 * 512 && i < 16 * 512) || (i >= 32 * 512 && i < 48 * 512);
			CHECK(rbuf[i] == (zero ? 0 : wbuf[i]), "after write-zeroes: byte %u is 0x%x", i,
			      rbuf[i]);
		}
		segs[0] = (struct seg){8, 8, 8 /* unknown flag */};
		expect("write-zeroes, unknown flag", req(T_WRITE_ZEROES, 0, segs, 16, false), S_UNSUPP);
		segs[0] = (struct seg){capacity - 4, 8, 0};
		expect("write-zeroes past the end", req(T_WRITE_ZEROES, 0, segs, 16, false), S_IOERR);
	}
	if (v.negotiated & F_DISCARD) {
		segs[0] = (struct seg){4096, 64, 0};
		expect("discard", req(T_DISCARD, 0, segs, 16, false), S_OK);
		segs[0].flags = 1;
		expect("discard with the unmap flag", req(T_DISCARD, 0, segs, 16, false), S_UNSUPP);
		expect("discard, 12-byte segment", req(T_DISCARD, 0, segs, 12, false), S_IOERR);
	}
}

static void hostile(void)
{
	expect("read past the end", req(T_IN, capacity, rbuf, 512, true), S_IOERR);
	expect("read straddling the end", req(T_IN, capacity - 1, rbuf, 1024, true), S_IOERR);
	expect("write past the end", req(T_OUT, capacity, wbuf, 512, false), S_IOERR);
	expect("sector 2^64-1", req(T_IN, ~0ull, rbuf, 512, true), S_IOERR);
	expect("sector * 512 overflows", req(T_OUT, (~0ull >> 9) + 1, wbuf, 512, false), S_IOERR);
	expect("read of 700 bytes", req(T_IN, 0, rbuf, 700, true), S_IOERR);
	expect("write of 100 bytes", req(T_OUT, 0, wbuf, 100, false), S_IOERR);
	expect("unknown type 0x77", req(0x77, 0, rbuf, 512, true), S_UNSUPP);

	/* Header of 8 bytes. */
	hd->type = T_IN;
	hd->sector = 0;
	*st = NO_ANSWER;
	desc(0, a(hd), 8, VRING_DESC_F_NEXT);
	desc(1, a(st), 1, VRING_DESC_F_WRITE);
	CHECK(run() >= 1, "short header: no answer");
	expect("8-byte header", *st, S_IOERR);

	/* Header in a writable descriptor (no readable bytes at all). */
	memcpy(rbuf, hd, 16);
	rbuf[16] = NO_ANSWER;
	desc(0, a(rbuf), 17, VRING_DESC_F_WRITE);
	CHECK(run() >= 1, "writable header: no answer");
	expect("writable header", rbuf[16], S_IOERR);

	/* A read whose data buffer is the descriptor table itself. */
	hd->type = T_IN;
	hd->sector = 0;
	*st = NO_ANSWER;
	desc(0, a(hd), 16, VRING_DESC_F_NEXT);
	desc(1, a(q.desc), 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE);
	desc(2, a(st), 1, VRING_DESC_F_WRITE);
	int64_t used = run();
	printf("virtio_blk: %-34s -> used len %ld, status %u, device status 0x%x\n",
	       "read over the descriptor table", used, *st, vdev_status(&v));
	CHECK(used == 4097 && *st == S_OK, "read over the descriptor table: len %ld status %u", used, *st);
	CHECK(vdev_reset(&v), "reset after the read over the ring");
	up("read over the ring");
	alive("read over the ring");

	/* No status byte at all: returned unanswered, the device asks for a reset. */
	hd->type = T_OUT;
	hd->sector = 0;
	desc(0, a(hd), 16, VRING_DESC_F_NEXT);
	desc(1, a(wbuf), 512, 0);
	uint32_t cfg_before = config_irqs;
	used = run();
	uint64_t end = time_us() + 500000;
	while ((!(vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET) || config_irqs == cfg_before) &&
	       time_us() < end)
		cpu_relax();
	printf("virtio_blk: %-34s -> used len %ld, device status 0x%x, config irqs %u\n",
	       "no status descriptor", used, vdev_status(&v), config_irqs - cfg_before);
	CHECK(used == 0, "no status descriptor: used len %ld", used);
	CHECK(vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET, "no status descriptor: no NEEDS_RESET");
	CHECK(config_irqs > cfg_before, "NEEDS_RESET without a configuration interrupt");
	CHECK(vdev_reset(&v), "reset after NEEDS_RESET");
	up("NEEDS_RESET");
	alive("reset after NEEDS_RESET");
}

void probe_main(const struct hvm_start_info *si)
{
	(void)si;
	host_bridge_id = mmio_read32(pci_ecam_base());
	CHECK(vdev_open(&v, VIRTIO_ID_BLK_MODERN), "no virtio-blk (1af4:1042) on bus 0 (--disk given?)");
	CHECK(v.msix_cap && v.msix_entries >= 2 && v.device, "virtio-blk: MSI-X or device config missing");
	irq_set_handler(VEC_CONFIG, on_irq);
	irq_set_handler(VEC_QUEUE, on_irq);
	vdev_msix_enable(&v);
	up("boot");
	irq_enable();
	printf("virtio_blk: offered 0x%lx, negotiated 0x%lx\n", v.offered, v.negotiated);
	CHECK(v.offered & F_FLUSH, "FLUSH not offered");
	CHECK(!(v.offered & F_RO), "a writable disk offers RO");

	capacity = mmio_read64(v.device + 0);
	uint32_t blk_size = mmio_read32(v.device + 20);
	uint64_t want = cmdline_u64("disk", 0);
	printf("virtio_blk: capacity %lu sectors, blk_size %u, seg_max %u, writeback %u\n", capacity,
	       blk_size, mmio_read32(v.device + 12), mmio_read8(v.device + 32));
	CHECK(!want || capacity == want / 512, "capacity %lu sectors, the disk has %lu bytes", capacity,
	      want);
	CHECK(capacity >= 4 * 2048, "disk too small for this probe (%lu sectors)", capacity);
	CHECK(blk_size == 512, "blk_size %u", blk_size);

	hd = probe_alloc(64, 64);
	st = probe_alloc(64, 64);
	segs = probe_alloc(4096, 64);
	wbuf = probe_alloc(DATA, 4096);
	rbuf = probe_alloc(DATA + 64, 4096);

	check_initial_content();
	write_read_flush();
	get_id();
	zeroes_and_discard();
	hostile();

	/* After all that, normal service, and a marker for the runner to find in the file. */
	memset(wbuf, 0, 512);
	memcpy(wbuf, MARKER, sizeof(MARKER) - 1);
	CHECK(req(T_OUT, MARKER_SECTOR, wbuf, 512, false) == S_OK, "marker write");
	CHECK(req(T_FLUSH, 0, NULL, 0, false) == S_OK, "final flush");
	CHECK(req(T_IN, 2048, rbuf, 4096, true) == S_OK, "read after the hostile requests");
	CHECK(rbuf[0] == my_pat(2048 * 512, 5),
	      "data written before the resets is gone (0x%x)", rbuf[0]);
	CHECK(queue_irqs > 0, "no queue interrupt seen");
	irq_disable();
	CHECK(vdev_reset(&v), "device reset does not complete");
	probe_pass();
}
