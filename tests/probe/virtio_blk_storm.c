/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk write storm for the crash test (tests/crash/crash_storm.py): numbered 4 KiB
 * records are written, DEPTH requests in flight, to slots scattered over the disk; every
 * `every` records the probe waits for all writes to complete, issues a FLUSH and, once the
 * FLUSH completed with OK, prints "STORM: flushed SEQ" (records 1..SEQ are then durable).
 * The runner SIGKILLs the VMM at some point and checks the image on the host.
 *
 * Record seq (1, 2, ...) lives at byte STORM_BASE + slot * 4096, slot = seq * STRIDE mod
 * SLOTS (a permutation: no slot is written twice in one run). Layout, little endian u64s:
 *   [0] magic "VIREOSTM"  [1] seq  [2] run id (cmdline run=)
 *   [3..510] T[(rot(seq) + i) mod 1024], T[j] = word(0x5354524d, j), rot(seq) = the top 10
 *            bits of seq * 0x9e3779b97f4a7c15
 *   [511] word(sum of words 0..510 mod 2^64, 511)
 * word(x, i) is a splitmix64-style mix of x and i (the runner recomputes all of it).
 *
 * Command line: disk=<bytes> (checked against the capacity), run=<id>, every=<records per
 * flush> (default 16). After all SLOTS records the probe passes and powers off.
 */
#include "virtio.h"

PROBE("virtio_blk_storm");

#define VIRTIO_ID_BLK_MODERN 0x1042
#define F_FLUSH (1ull << 9)
#define F_CONFIG_WCE (1ull << 11)

#define T_OUT 1
#define T_FLUSH 4
#define S_OK 0
#define NO_ANSWER 0xee

#define QSIZE 64
#define DEPTH 8
#define REC 4096
#define STORM_BASE (1024 * 1024) /* bytes: the first MiB is left alone */
#define SLOTS 4096u              /* 16 MiB of records */
#define STRIDE 1237u             /* odd, so seq * STRIDE mod SLOTS is a permutation */
#define MAGIC 0x4d54534f45524956ull /* "VIREOSTM" */
#define TIMEOUT_US 5000000
#define TABLE 1024
#define VEC_QUEUE 0x71
#define VEC_TICK 0x72 /* periodic LAPIC timer: bounds every halt */

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct slot {
	struct hdr *hd;
	uint8_t *st;
	uint64_t *data;
	uint64_t seq; /* 0: free */
};

static struct vdev v;
static struct vq q;
static struct slot slots[DEPTH + 1]; /* the last one is for FLUSH */

static void on_irq(struct trap_frame *f)
{
	(void)f;
	lapic_eoi();
}

static uint64_t a(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static uint64_t word(uint64_t seq, uint64_t i)
{
	uint64_t z = seq * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull + 0x632be59bd9b4e019ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Guest instructions can be very slow (nested or software-assisted hosts), so a record is
 * one string copy out of a precomputed table plus O(1) arithmetic: body word i (3..510) is
 * table[(rot(seq) + i) mod TABLE], checksum = mix(sum of words 0..510), sums from prefix
 * sums over the doubled table. */
static uint64_t table2[2 * TABLE + 1]; /* table twice over; table2[2 * TABLE] unused */
static uint64_t prefix[2 * TABLE + 1]; /* prefix[j] = sum of table2[0..j) */

static void table_init(void)
{
	for (unsigned j = 0; j < TABLE; j++)
		table2[j] = table2[j + TABLE] = word(0x5354524d, j);
	prefix[0] = 0;
	for (unsigned j = 0; j < 2 * TABLE; j++)
		prefix[j + 1] = prefix[j] + table2[j];
}

static uint64_t rot(uint64_t seq)
{
	return (seq * 0x9e3779b97f4a7c15ull) >> 54; /* 0..1023 = TABLE - 1 */
}

static void fill_record(uint64_t *w, uint64_t seq, uint64_t run_id)
{
	uint64_t r = rot(seq);
	const uint64_t *src = &table2[r + 3];
	uint64_t *dst = &w[3];
	uint64_t n = REC / 8 - 4;
	w[0] = MAGIC;
	w[1] = seq;
	w[2] = run_id;
	__asm__ volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
	uint64_t sum = MAGIC + seq + run_id + prefix[r + REC / 8 - 1] - prefix[r + 3];
	w[REC / 8 - 1] = word(sum, 511);
}

static uint64_t sector_of(uint64_t seq)
{
	return (STORM_BASE + (seq * STRIDE % SLOTS) * (uint64_t)REC) / 512;
}

/* Chain k uses descriptors 3k..3k+2 (header, data or none, status); head 3k. */
static void submit(unsigned k, uint32_t type, uint64_t sector)
{
	struct slot *s = &slots[k];
	uint16_t d = (uint16_t)(3 * k);
	s->hd->type = type;
	s->hd->reserved = 0;
	s->hd->sector = sector;
	*s->st = NO_ANSWER;
	q.desc[d].addr = a(s->hd);
	q.desc[d].len = sizeof(*s->hd);
	q.desc[d].flags = VRING_DESC_F_NEXT;
	q.desc[d].next = (uint16_t)(type == T_OUT ? d + 1 : d + 2); /* FLUSH: no data */
	if (type == T_OUT) {
		q.desc[d + 1].addr = a(s->data);
		q.desc[d + 1].len = REC;
		q.desc[d + 1].flags = VRING_DESC_F_NEXT;
		q.desc[d + 1].next = (uint16_t)(d + 2);
	}
	uint16_t sd = (uint16_t)(3 * k + 2);
	q.desc[sd].addr = a(s->st);
	q.desc[sd].len = 1;
	q.desc[sd].flags = VRING_DESC_F_WRITE;
	q.desc[sd].next = 0;
	vq_submit(&q, (uint16_t)(3 * k));
}

/* Wait (bounded) for one completion, halted between interrupts so that the vCPU leaves the
 * host CPU to the VMM's I/O threads; returns the chain index k. */
static unsigned complete_one(void)
{
	uint64_t end = time_us() + TIMEOUT_US;
	uint32_t id, len;
	for (;;) {
		irq_disable();
		if (vq_pop_used(&q, &id, &len))
			break;
		CHECK(time_us() < end, "no completion within %u s (device status 0x%x)",
		      TIMEOUT_US / 1000000, vdev_status(&v));
		irq_enable_and_halt(); /* the queue interrupt or the next tick */
	}
	irq_enable();
	CHECK(id % 3 == 0 && id / 3 <= DEPTH, "used id %u is no head this probe submitted", id);
	unsigned k = id / 3;
	CHECK(len >= 1, "chain %u: used len %u", k, len);
	CHECK(*slots[k].st == S_OK, "request %u (seq %lu): status %u", k, slots[k].seq,
	      *slots[k].st);
	return k;
}

void probe_main(const struct hvm_start_info *si)
{
	(void)si;
	CHECK(vdev_open(&v, VIRTIO_ID_BLK_MODERN), "no virtio-blk (1af4:1042) on bus 0 (--disk given?)");
	CHECK(vdev_negotiate(&v, VIRTIO_F_VERSION_1 | F_FLUSH | F_CONFIG_WCE), "feature negotiation");
	CHECK(v.negotiated & F_FLUSH, "FLUSH not offered");
	CHECK(v.msix_cap && v.msix_entries >= 1, "virtio-blk without MSI-X");
	irq_set_handler(VEC_QUEUE, on_irq);
	irq_set_handler(VEC_TICK, on_irq);
	vdev_msix_enable(&v);
	vdev_msix_set(&v, 0, VEC_QUEUE, (uint8_t)lapic_id());
	CHECK(vq_setup(&v, &q, 0, QSIZE, 0), "queue setup");
	vdev_driver_ok(&v);
	CHECK(vdev_status(&v) == 0x0f, "status 0x%x after DRIVER_OK", vdev_status(&v));

	uint64_t capacity = mmio_read64(v.device + 0);
	uint64_t want = cmdline_u64("disk", 0);
	uint64_t run_id = cmdline_u64("run", 0);
	uint64_t every = cmdline_u64("every", 16);
	CHECK(!want || capacity == want / 512, "capacity %lu sectors, the disk has %lu bytes", capacity,
	      want);
	CHECK(capacity * 512 >= STORM_BASE + (uint64_t)SLOTS * REC, "disk too small (%lu sectors)",
	      capacity);
	CHECK(every >= 1 && every <= SLOTS, "every=%lu", every);
	table_init();
	for (unsigned k = 0; k <= DEPTH; k++) {
		slots[k].hd = probe_alloc(64, 64);
		slots[k].st = probe_alloc(64, 64);
		slots[k].data = probe_alloc(REC, 4096);
	}
	lapic_write(LAPIC_TIMER_DIV, 0x3); /* divide by 16 */
	lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_TICK);
	lapic_write(LAPIC_TIMER_INIT, 200000);
	irq_enable();
	printf("STORM: start run=%lu every=%lu slots=%u writeback=%u\n", run_id, every, SLOTS,
	       mmio_read8(v.device + 32));

	uint64_t next = 1;    /* next seq to write */
	unsigned inflight = 0;
	while (next <= SLOTS) {
		/* Write records up to the next flush point, DEPTH at a time. */
		uint64_t stop = next + every - 1;
		if (stop > SLOTS)
			stop = SLOTS;
		while (next <= stop || inflight) {
			unsigned k = DEPTH;
			if (next <= stop && inflight < DEPTH) {
				for (k = 0; k < DEPTH && slots[k].seq; k++)
					;
			}
			if (k < DEPTH) {
				fill_record(slots[k].data, next, run_id);
				slots[k].seq = next;
				submit(k, T_OUT, sector_of(next));
				next++;
				inflight++;
				continue;
			}
			k = complete_one();
			CHECK(k < DEPTH && slots[k].seq, "completion of chain %u that is not in flight", k);
			slots[k].seq = 0;
			inflight--;
		}
		/* All writes up to stop completed: flush them. */
		slots[DEPTH].seq = stop;
		submit(DEPTH, T_FLUSH, 0);
		CHECK(complete_one() == DEPTH, "a flush completed as something else");
		slots[DEPTH].seq = 0;
		printf("STORM: flushed %lu\n", stop);
	}
	irq_disable();
	lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
	CHECK(vdev_reset(&v), "device reset does not complete");
	probe_pass();
}
