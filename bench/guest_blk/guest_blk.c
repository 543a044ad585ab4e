/* SPDX-License-Identifier: MIT */
/*
 * Benchmark probe guest for virtio-blk, run by bench/guest_blk/run.py under Vireo and under
 * QEMU (q35, virtio-blk-pci with disable-legacy=on) on the same file.
 *
 * The driver: one split virtqueue of qsize entries (default 256), VERSION_1 + INDIRECT_DESC +
 * FLUSH + CONFIG_WCE (writeback switched on) + SEG_MAX/SIZE_MAX/BLK_SIZE, and EVENT_IDX unless
 * evidx=0. A 4 KiB request is a direct chain of three descriptors (header, data, status); a
 * 1 MiB request is one descriptor pointing to an indirect table (header, 1 MiB / seg data
 * segments, status; seg=65536 by default, i.e. 16 segments). Requests are published in
 * batches: every free slot is refilled, the avail index is written once and the device is
 * notified only when it asked to be (avail_event, or the NO_NOTIFY flag without EVENT_IDX).
 * Completions: mode=irq (default) takes an MSI-X interrupt and halts (sti;hlt) while nothing
 * is done, as a real driver does; mode=poll attaches no vector and spins on the used index.
 *
 * Cases, from cases=<case>:<n>[,...] with case one of 4k-randread-qdD, 4k-randwrite-qdD,
 * 1m-read-qdD, 1m-write-qdD: n requests, D in flight. Random offsets are 4 KiB aligned, drawn
 * from a xorshift64* generator (seed=) over [1 MiB, half the disk); sequential ones walk
 * [half the disk, its end) and wrap. Each case prints "BENCH-START <case>", runs, and prints
 * "BENCH-END <case> <n> <bytes>" the moment its last request completed (the runner times
 * the lines on the host: the guest clock means nothing there), then a BENCH-INFO line with
 * the guest's own counts (notifies, interrupts) and, after write cases, flushes.
 *
 * Guest instructions are very expensive on nested hosts (about a microsecond each here), and
 * whatever the probe does per request is paid alike under both VMMs and dilutes their
 * difference; so chains are laid out once per case and a request only writes its sector,
 * the status sentinel and two guard words.
 *
 * Correctness guard, so that the benchmark cannot measure failures: every used element must
 * name a request in flight with the exact used length, every status byte must be OK, and
 * every request read must find the word 0x5649524542454e43 ^ <byte offset> at the start of
 * its first and of its last 4 KiB block (the runner fills the file so, every write here keeps
 * it so; read buffers are poisoned there before each read). Before the cases, 16 blocks in
 * the reserved first MiB are written with a seed-dependent pattern, flushed and read back
 * whole; after the cases they are read and compared again. Any error is a
 * "PROBE guest_blk: FAIL ..." line.
 *
 * Command line: disk=<bytes> (checked against the capacity), cases=, seed=, qsize=, seg=,
 * mode=irq|poll, evidx=0|1, mem=<MiB> (buffers go at 16 MiB and need max(qd) MiB there).
 */
#include "virtio.h"

PROBE("guest_blk");

#define VIRTIO_ID_BLK_MODERN 0x1042
#define F_SIZE_MAX (1ull << 1)
#define F_SEG_MAX (1ull << 2)
#define F_BLK_SIZE (1ull << 6)
#define F_FLUSH (1ull << 9)
#define F_CONFIG_WCE (1ull << 11)
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define S_OK 0
#define NO_ANSWER 0xee

#define MAGIC 0x5649524542454e43ull /* "VIREBENC" */
#define BLK 4096u
#define BIG (1024u * 1024u)
#define RESERVED (1024u * 1024u) /* first MiB: the verification blocks, never benchmarked */
#define NVERIFY 16
#define MAX_QD 64
#define MAX_CASES 16
#define BUF_BASE ((uint64_t)16 << 20)
#define TIMEOUT_TICKS 100 /* 10 s of 100 ms ticks without a completion: FAIL */
#define VEC_QUEUE 0x71
#define VEC_TICK 0x72

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct slot {
	struct hdr *hd;
	uint8_t *st;
	struct vring_desc *ind; /* indirect table (1 MiB requests) */
	uint8_t *buf;		/* BIG bytes at BUF_BASE + k MiB */
	uint64_t off;		/* byte offset on the disk */
	bool busy;
};

struct bcase {
	char name[32];
	bool big, write, random;
	unsigned qd;
	uint64_t n;
};

struct bench {
	struct vdev v;
	struct vq q;
	struct slot slot[MAX_QD];
	unsigned free[MAX_QD], nfree;
	uint64_t capacity; /* bytes */
	uint64_t rng;
	uint32_t seg, nseg;
	bool evidx, poll;
	uint64_t kicks;
	uint16_t published; /* avail idx last made visible */
};

static volatile uint64_t queue_irqs, ticks;
static struct bench b;
static struct bcase cases[MAX_CASES];
static unsigned ncases;

static void on_irq(struct trap_frame *f)
{
	if (f->vector == VEC_QUEUE)
		queue_irqs++;
	else
		ticks++;
	lapic_eoi();
}

static uint64_t a(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static uint64_t rnd(void)
{
	b.rng ^= b.rng >> 12;
	b.rng ^= b.rng << 25;
	b.rng ^= b.rng >> 27;
	return b.rng * 0x2545f4914f6cdd1dull;
}

static uint64_t vpat(uint64_t off, uint64_t seed)
{
	uint64_t z = (off + seed * 0x9e3779b97f4a7c15ull) ^ 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 29)) * 0x94d049bb133111ebull;
	return z ^ (z >> 32);
}

/* ---- rings: EVENT_IDX fields live after the rings ------------------------------------- */
static volatile uint16_t *used_event(void)
{
	return &b.q.avail->ring[b.q.size];
}

static volatile uint16_t *avail_event(void)
{
	return (volatile uint16_t *)&b.q.used->ring[b.q.size];
}

/* Make every avail entry written since the last call visible; notify if the device wants. */
static void publish(void)
{
	uint16_t old = b.published, now = b.q.avail_idx;
	bool kick;
	if (old == now)
		return;
	barrier(); /* ring entries (x86: stores stay in order) before the index */
	b.q.avail->idx = now;
	b.published = now;
	mb(); /* the index before reading the device's suppression state */
	if (b.evidx)
		kick = (uint16_t)(now - *avail_event() - 1) < (uint16_t)(now - old);
	else
		kick = !(b.q.used->flags & VRING_USED_F_NO_NOTIFY);
	if (kick) {
		mmio_write16(b.q.notify_addr, b.q.index);
		b.kicks++;
	}
}

static void add(uint16_t head)
{
	b.q.avail->ring[b.q.avail_idx % b.q.size] = head;
	b.q.avail_idx++;
}

static void set_desc(volatile struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* Lay out slot k's chain for requests of type and len (direct chain at 3k..3k+2 for 4 KiB
 * and FLUSH, one indirect descriptor at index k for 1 MiB). Done once per case: a request
 * then only writes its sector, the status sentinel and the guard words (guest instructions
 * are expensive on nested hosts, and both VMMs would pay for them alike). */
static void chain_build(unsigned k, uint32_t type, uint32_t len)
{
	struct slot *s = &b.slot[k];
	uint16_t wr = type == T_IN ? VRING_DESC_F_WRITE : 0;
	s->hd->type = type;
	s->hd->reserved = 0;
	if (len == BIG) {
		uint16_t n = 0;
		set_desc(&s->ind[n], a(s->hd), sizeof(*s->hd), VRING_DESC_F_NEXT, 1);
		for (n = 1; n <= b.nseg; n++)
			set_desc(&s->ind[n], a(s->buf) + (uint64_t)(n - 1) * b.seg, b.seg,
				 VRING_DESC_F_NEXT | wr, (uint16_t)(n + 1));
		set_desc(&s->ind[n], a(s->st), 1, VRING_DESC_F_WRITE, 0);
		set_desc(&b.q.desc[k], a(s->ind), (uint32_t)((n + 1) * sizeof(struct vring_desc)),
			 VRING_DESC_F_INDIRECT, 0);
		return;
	}
	uint16_t d = (uint16_t)(3 * k);
	set_desc(&b.q.desc[d], a(s->hd), sizeof(*s->hd), VRING_DESC_F_NEXT,
		 (uint16_t)(len ? d + 1 : d + 2)); /* FLUSH: no data descriptor */
	if (len)
		set_desc(&b.q.desc[d + 1], a(s->buf), len, VRING_DESC_F_NEXT | wr, (uint16_t)(d + 2));
	set_desc(&b.q.desc[d + 2], a(s->st), 1, VRING_DESC_F_WRITE, 0);
}

/* Queue slot k (chain already built) for the len bytes at off; not yet published. Guard
 * words: the first 8 bytes of the first and of the last 4 KiB block of the request (reads:
 * poisoned; writes: MAGIC ^ their offset). */
static void issue(unsigned k, uint32_t type, uint64_t off, uint32_t len)
{
	struct slot *s = &b.slot[k];
	uint64_t last = len >= BLK ? len - BLK : 0;
	s->hd->sector = off / 512;
	*s->st = NO_ANSWER;
	s->off = off;
	s->busy = true;
	if (type == T_OUT) {
		*(uint64_t *)s->buf = MAGIC ^ off;
		*(uint64_t *)(s->buf + last) = MAGIC ^ (off + last);
	} else if (type == T_IN) {
		*(uint64_t *)s->buf = 0;
		*(uint64_t *)(s->buf + last) = 0;
	}
	add(len == BIG ? (uint16_t)k : (uint16_t)(3 * k));
}

/* Check one completion (used element id/len) of a request of len bytes; returns its slot. */
static unsigned check_done(const char *what, uint32_t id, uint32_t ulen, uint32_t type,
			   uint32_t len)
{
	unsigned k = len == BIG ? id : id / 3;
	CHECK(k < MAX_QD && (len == BIG || id % 3 == 0) && b.slot[k].busy,
	      "%s: used id %u names no request in flight", what, id);
	struct slot *s = &b.slot[k];
	s->busy = false;
	CHECK(*s->st == S_OK, "%s: request at byte %lu: status %u", what, s->off, *s->st);
	uint32_t want = type == T_IN ? len + 1 : 1;
	CHECK(ulen == want, "%s: request at byte %lu: used len %u, expected %u", what, s->off, ulen,
	      want);
	if (type == T_IN) {
		uint64_t last = len - BLK;
		uint64_t w0 = *(volatile uint64_t *)s->buf, w1 = *(volatile uint64_t *)(s->buf + last);
		CHECK(w0 == (MAGIC ^ s->off) && w1 == (MAGIC ^ (s->off + last)),
		      "%s: request at byte %lu reads guard words 0x%lx 0x%lx: not the data written there",
		      what, s->off, w0, w1);
	}
	return k;
}

/* Wait (bounded by the tick count: no clock read on the hot path) until the used ring has
 * something; interrupts or polling per mode. */
static void wait_used(const char *what)
{
	uint64_t end = ticks + TIMEOUT_TICKS;
	for (;;) {
		if (vq_used_idx(&b.q) != b.q.last_used)
			return;
		if (b.poll) {
			cpu_relax();
			if (ticks > end)
				break;
			continue;
		}
		irq_disable();
		if (b.evidx)
			*used_event() = b.q.last_used; /* interrupt on the next completion */
		mb();
		if (vq_used_idx(&b.q) != b.q.last_used) {
			irq_enable();
			return;
		}
		if (ticks > end)
			break;
		irq_enable_and_halt(); /* the queue interrupt, or the next tick */
	}
	probe_fail("%s: no completion within %u s (device status 0x%x, avail %u, used %u)", what,
		   TIMEOUT_TICKS / 10, vdev_status(&b.v), b.q.avail_idx, vq_used_idx(&b.q));
}

/* One request on slot 0, synchronously (setup and verification). */
static void sync_req(const char *what, uint32_t type, uint64_t off, uint32_t len)
{
	uint32_t id, ulen;
	chain_build(0, type, len);
	issue(0, type, off, len);
	publish();
	wait_used(what);
	CHECK(vq_pop_used(&b.q, &id, &ulen), "%s: used ring", what);
	check_done(what, id, ulen, type, len);
}

static void verify_blocks(const char *what, bool write)
{
	uint64_t seed = cmdline_u64("seed", 1);
	struct slot *s = &b.slot[0];
	for (unsigned i = 0; i < NVERIFY; i++) {
		uint64_t off = (uint64_t)i * (RESERVED / NVERIFY);
		uint64_t *w = (uint64_t *)s->buf;
		if (write) {
			for (unsigned j = 0; j < BLK / 8; j++)
				w[j] = vpat(off + 8 * j, seed);
			sync_req(what, T_OUT, off, BLK); /* sets w[0] = MAGIC ^ off */
			continue;
		}
		for (unsigned j = 0; j < BLK / 8; j++)
			w[j] = 0; /* the write left the pattern in this buffer */
		sync_req(what, T_IN, off, BLK);
		for (unsigned j = 1; j < BLK / 8; j++)
			CHECK(w[j] == vpat(off + 8 * j, seed),
			      "%s: byte %lu reads 0x%lx, wrote 0x%lx", what, off + 8 * j, w[j],
			      vpat(off + 8 * j, seed));
	}
	if (write)
		sync_req(what, T_FLUSH, 0, 0);
}

static bool parse_case(const char *s, size_t n, struct bcase *c)
{
	static const struct {
		const char *p;
		bool big, write, random;
	} kinds[] = {{"4k-randread-qd", false, false, true}, {"4k-randwrite-qd", false, true, true},
		     {"1m-read-qd", true, false, false},      {"1m-write-qd", true, true, false}};
	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t pl = strlen(kinds[i].p), j;
		if (n <= pl || strncmp(s, kinds[i].p, pl))
			continue;
		uint64_t qd = 0, cnt = 0;
		for (j = pl; j < n && s[j] >= '0' && s[j] <= '9'; j++)
			qd = qd * 10 + (uint64_t)(s[j] - '0');
		if (j == pl || j >= n || s[j] != ':' || j >= sizeof(c->name))
			return false;
		memcpy(c->name, s, j);
		c->name[j] = 0;
		size_t k = ++j;
		for (; j < n && s[j] >= '0' && s[j] <= '9' && cnt < (1ull << 40); j++)
			cnt = cnt * 10 + (uint64_t)(s[j] - '0');
		if (j == k || j != n || !qd || qd > MAX_QD || !cnt)
			return false;
		c->big = kinds[i].big;
		c->write = kinds[i].write;
		c->random = kinds[i].random;
		c->qd = (unsigned)qd;
		c->n = cnt;
		return true;
	}
	return false;
}

static void parse_cases(void)
{
	static char buf[768];
	CHECK(cmdline_str("cases", buf, sizeof(buf)), "no cases= on the command line");
	for (const char *p = buf; *p;) {
		size_t n = 0;
		while (p[n] && p[n] != ',')
			n++;
		CHECK(ncases < MAX_CASES, "more than %u cases", MAX_CASES);
		CHECK(parse_case(p, n, &cases[ncases]), "bad case %u in '%s' (want e.g. 4k-randread-qd32:1000)",
		      ncases + 1, buf);
		ncases++;
		p += n + (p[n] == ',');
	}
}

static void run_case(const struct bcase *c)
{
	uint32_t len = c->big ? BIG : BLK, type = c->write ? T_OUT : T_IN;
	/* 4 KiB random requests stay in [1 MiB, half), 1 MiB sequential ones in [half, end): the
	 * 1 MiB writes keep only their first and last block's guard word right. */
	uint64_t half = (b.capacity / 2) & ~(uint64_t)(BIG - 1);
	uint64_t span = half - RESERVED, pos = half, issued = 0, done = 0;
	uint64_t kicks0 = b.kicks, irqs0 = queue_irqs, t0;
	uint32_t id, ulen;

	CHECK(span >= (uint64_t)len * c->qd && b.capacity - half >= (uint64_t)len * c->qd,
	      "%s: disk too small", c->name);
	CHECK(c->big || 3 * c->qd <= b.q.size, "%s: qd %u needs %u descriptors, queue has %u",
	      c->name, c->qd, 3 * c->qd, b.q.size);
	CHECK(c->qd <= b.q.size, "%s: qd %u > queue size %u", c->name, c->qd, b.q.size);
	b.nfree = 0;
	for (unsigned k = c->qd; k-- > 0;) {
		chain_build(k, type, len);
		b.free[b.nfree++] = k;
	}
	printf("BENCH-START %s\n", c->name);
	t0 = time_us();
	while (done < c->n) {
		while (b.nfree && issued < c->n) {
			uint64_t off;
			if (c->random) {
				off = RESERVED + (rnd() % (span / BLK)) * BLK;
			} else {
				if (pos + len > b.capacity)
					pos = half;
				off = pos;
				pos += len;
			}
			issue(b.free[--b.nfree], type, off, len);
			issued++;
		}
		publish();
		wait_used(c->name);
		while (vq_pop_used(&b.q, &id, &ulen)) {
			b.free[b.nfree++] = check_done(c->name, id, ulen, type, len);
			done++;
		}
	}
	uint64_t us = time_us() - t0;
	printf("BENCH-END %s %lu %lu\n", c->name, c->n, c->n * len);
	printf("BENCH-INFO %s guest_us=%lu kicks=%lu irqs=%lu\n", c->name, us, b.kicks - kicks0,
	       queue_irqs - irqs0);
	if (c->write)
		sync_req(c->name, T_FLUSH, 0, 0);
}

static void setup(void)
{
	uint64_t need = VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | F_SEG_MAX | F_FLUSH |
			F_CONFIG_WCE;
	uint64_t qsize = cmdline_u64("qsize", 256);
	char mode[8] = "irq";

	b.evidx = cmdline_u64("evidx", 1) != 0;
	cmdline_str("mode", mode, sizeof(mode));
	CHECK(!strncmp(mode, "irq", 4) || !strncmp(mode, "poll", 5), "mode=%s: irq or poll", mode);
	b.poll = mode[0] == 'p';
	if (b.evidx)
		need |= VIRTIO_F_EVENT_IDX;
	CHECK(qsize >= 4 && qsize <= 256 && !(qsize & (qsize - 1)), "qsize=%lu: a power of two, 4..256",
	      qsize);
	CHECK(vdev_open(&b.v, VIRTIO_ID_BLK_MODERN), "no virtio-blk (1af4:1042) on bus 0");
	CHECK(b.v.device, "virtio-blk without a device configuration");
	CHECK(vdev_negotiate(&b.v, need | F_SIZE_MAX | F_BLK_SIZE), "feature negotiation");
	CHECK((b.v.negotiated & need) == need, "device lacks features 0x%lx",
	      need & ~b.v.negotiated);
	CHECK(b.poll || (b.v.msix_cap && b.v.msix_entries >= 1), "mode=irq needs MSI-X");
	if (!b.poll) {
		irq_set_handler(VEC_QUEUE, on_irq);
		vdev_msix_enable(&b.v);
		vdev_msix_set(&b.v, 0, VEC_QUEUE, (uint8_t)lapic_id());
	}
	CHECK(vq_setup(&b.v, &b.q, 0, (uint16_t)qsize, b.poll ? VIRTIO_MSI_NO_VECTOR : 0),
	      "queue setup");
	CHECK(b.q.size == qsize, "queue size %u, asked for %lu", b.q.size, qsize);
	if (b.poll)
		b.q.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	mmio_write8(b.v.device + 32, 1); /* writeback cache on: flushes are the driver's job */
	vdev_driver_ok(&b.v);
	CHECK(vdev_status(&b.v) == 0x0f, "status 0x%x after DRIVER_OK", vdev_status(&b.v));

	b.capacity = mmio_read64(b.v.device + 0) * 512;
	uint32_t size_max = mmio_read32(b.v.device + 8), seg_max = mmio_read32(b.v.device + 12);
	uint32_t blk_size = mmio_read32(b.v.device + 20);
	uint64_t disk = cmdline_u64("disk", 0);
	b.seg = (uint32_t)cmdline_u64("seg", 65536);
	CHECK(b.seg >= BLK && b.seg <= BIG && !(BIG % b.seg), "seg=%u: divides 1 MiB, >= 4 KiB", b.seg);
	b.nseg = BIG / b.seg;
	CHECK(!disk || b.capacity == disk, "capacity %lu bytes, the disk has %lu", b.capacity, disk);
	CHECK(!(b.v.negotiated & F_BLK_SIZE) || blk_size == 512 || blk_size == 4096, "blk_size %u",
	      blk_size);
	CHECK(b.nseg <= seg_max, "1 MiB in %u segments, the device takes %u (use a larger seg=)",
	      b.nseg, seg_max);
	CHECK(!(b.v.negotiated & F_SIZE_MAX) || b.seg <= size_max, "seg=%u > size_max %u", b.seg,
	      size_max);
	printf("guest_blk: capacity %lu MiB, features 0x%lx, queue %u, seg_max %u, writeback %u, "
	       "mode %s, event_idx %u, 1 MiB = %u x %u bytes (indirect)\n",
	       b.capacity >> 20, b.v.negotiated, b.q.size, seg_max, mmio_read8(b.v.device + 32),
	       b.poll ? "poll" : "irq", b.evidx, b.nseg, b.seg);
}

/* Buffers: slot k at BUF_BASE + k MiB, checked against the RAM the loader reported. */
static void buffers(unsigned qd, bool big)
{
	uint64_t end = BUF_BASE + (uint64_t)qd * BIG;
	const struct hvm_start_info *si = boot_start_info;
	bool ok = false;
	if (si && si->version >= 1 && si->memmap_paddr && si->memmap_entries) {
		const struct hvm_memmap_entry *mm =
			(const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
		for (uint32_t i = 0; i < si->memmap_entries && i < 128; i++)
			ok |= mm[i].type == 1 && mm[i].addr <= BUF_BASE && mm[i].addr + mm[i].size >= end;
	} else {
		ok = (cmdline_u64("mem", 0) << 20) >= end;
	}
	CHECK(ok, "buffers need RAM at [0x%lx, 0x%lx): give the guest more memory", BUF_BASE, end);
	for (unsigned k = 0; k < qd; k++) {
		struct slot *s = &b.slot[k];
		s->hd = probe_alloc(64, 64);
		s->st = probe_alloc(64, 64);
		s->ind = probe_alloc((b.nseg + 2) * sizeof(struct vring_desc), 64);
		s->buf = (uint8_t *)(uintptr_t)(BUF_BASE + (uint64_t)k * BIG);
		/* Touch every page now, so that no first-touch fault lands in a measured case
		 * (one store a page: guest instructions are slow on nested hosts). */
		for (uint32_t o = 0; o < (big || k == 0 ? BIG : BLK); o += BLK)
			*(volatile uint8_t *)(s->buf + o + 8) = 0x5a;
	}
}

void probe_main(const struct hvm_start_info *si)
{
	(void)si;
	unsigned maxqd = 1;
	bool big = false;

	b.rng = cmdline_u64("seed", 1) * 0x9e3779b97f4a7c15ull + 1;
	setup();
	parse_cases();
	for (unsigned i = 0; i < ncases; i++) {
		maxqd = cases[i].qd > maxqd ? cases[i].qd : maxqd;
		big |= cases[i].big;
	}
	buffers(maxqd, big);
	irq_set_handler(VEC_TICK, on_irq);
	lapic_write(LAPIC_TIMER_DIV, 0x3); /* divide by 16: a 100 ms tick bounds every halt */
	lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_TICK);
	lapic_write(LAPIC_TIMER_INIT, 6250000);
	irq_enable();

	verify_blocks("verification write", true);
	verify_blocks("verification read", false);
	for (unsigned i = 0; i < ncases; i++)
		run_case(&cases[i]);
	verify_blocks("verification read after the cases", false);
	printf("BENCH-DONE %u cases\n", ncases);

	irq_disable();
	lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
	CHECK(vdev_reset(&b.v), "device reset does not complete");
	probe_pass();
}
