/* SPDX-License-Identifier: MIT */
#include "devices/virtio/virtq.h"
#include "devices/virtio/virtio_spec.h"
#include "common/log.h"
#include "memory/gmem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * Accessors for ring fields. The guest writes these concurrently, so each field is read
 * exactly once with an atomic (single, non-torn) load; ring fields are naturally aligned
 * (checked in vq_activate), so the atomic builtins are valid on them.
 */
static inline uint16_t ring_ld16(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED);
}

static inline void ring_st16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELAXED);
}

static inline void ring_st32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELAXED);
}

/*
 * Copy one descriptor out of guest memory. The barrier makes the compiler materialise the
 * copy here, so every later check and use sees the same values (no double fetch), and
 * memcpy copes with indirect tables that the driver did not align.
 */
static inline void desc_load(const uint8_t *p, struct vring_desc *d)
{
	memcpy(d, p, sizeof(*d));
	barrier();
}

static bool is_pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

void vq_init(struct virtq *vq, const char *name, unsigned index, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->name = name;
	vq->index = index;
	vq->max_size = max_size;
	vq->size = max_size;
}

void vq_reset(struct virtq *vq)
{
	vq_init(vq, vq->name, vq->index, vq->max_size);
}

/* Mark the queue broken; returns -EIO so callers can `return vq_fail(...)`. */
PRINTF_FMT(2, 3) static int vq_fail(struct virtq *vq, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vlog_rl("%s: queue %u: %s; queue stopped until device reset", vq->name ? vq->name : "virtio",
		vq->index, msg);
	if (!vq->broken)
		vq->broken_reason = fmt;
	vq->broken = true;
	vq->live = false;
	return -EIO;
}

/* Host pointer for a ring area of len bytes at gpa, aligned as the spec demands. */
static uint8_t *ring_map(const struct gmem *mem, uint64_t gpa, uint64_t len, unsigned align)
{
	if (gpa & (align - 1))
		return NULL;
	uint8_t *p = gmem_ptr(mem, gpa, len);
	if (p && ((uintptr_t)p & (align - 1)))
		return NULL; /* only possible with odd fake memory; atomics need alignment */
	return p;
}

int vq_activate(struct virtq *vq, const struct gmem *mem, bool event_idx, bool indirect)
{
	vq->live = false;
	vq->last_avail = vq->used_idx = vq->signalled_used = 0;
	vq->signalled_valid = vq->need_signal = false;
	if (vq->broken)
		return -EIO;
	if (!is_pow2(vq->size) || vq->size > vq->max_size) {
		vq_fail(vq, "invalid queue size %u (power of two <= %u)", vq->size, vq->max_size);
		return -EINVAL;
	}
	vq->mem = mem;
	vq->desc = ring_map(mem, vq->desc_gpa, VRING_DESC_SIZE(vq->size), VRING_DESC_ALIGN);
	vq->avail = ring_map(mem, vq->avail_gpa, VRING_AVAIL_SIZE(vq->size), VRING_AVAIL_ALIGN);
	vq->used = ring_map(mem, vq->used_gpa, VRING_USED_SIZE(vq->size), VRING_USED_ALIGN);
	if (!vq->desc || !vq->avail || !vq->used) {
		vq_fail(vq, "ring areas desc %#llx avail %#llx used %#llx not in RAM or misaligned",
			(unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
			(unsigned long long)vq->used_gpa);
		return -EINVAL;
	}
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->live = true;
	return 0;
}

/* Follow the chain starting at head and fill c. Any driver error breaks the queue. */
static int vq_walk(struct virtq *vq, uint16_t head, struct vq_chain *c)
{
	const uint8_t *table = vq->desc;
	uint32_t table_n = vq->size;
	uint32_t visited = 0; /* descriptors followed in the current table */
	bool in_indirect = false, seen_write = false;
	uint64_t total = 0;
	uint32_t i = head;
	struct vring_desc d;

	c->head = head;
	c->num_out = c->num_in = 0;
	c->out_bytes = c->in_bytes = 0;
	for (;;) {
		if (i >= table_n)
			return vq_fail(vq, "chain %u: descriptor index %u >= %s size %u", head, i,
				       in_indirect ? "indirect table" : "queue", table_n);
		if (++visited > table_n)
			return vq_fail(vq, "chain %u: longer than %s size %u (loop?)", head,
				       in_indirect ? "indirect table" : "queue", table_n);
		desc_load(table + 16 * (uint64_t)i, &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect)
				return vq_fail(vq, "chain %u: INDIRECT not negotiated", head);
			if (in_indirect)
				return vq_fail(vq, "chain %u: indirect descriptor inside indirect table",
					       head);
			if (d.flags & VRING_DESC_F_NEXT)
				return vq_fail(vq, "chain %u: INDIRECT together with NEXT", head);
			if (d.len == 0 || d.len % 16 || d.len / 16 > VQ_MAX_INDIRECT)
				return vq_fail(vq, "chain %u: bad indirect table length %u", head,
					       d.len);
			table = gmem_ptr(vq->mem, d.addr, d.len);
			if (!table)
				return vq_fail(vq, "chain %u: indirect table %#llx+%u not in RAM", head,
					       (unsigned long long)d.addr, d.len);
			table_n = d.len / 16;
			in_indirect = true;
			visited = 0;
			i = 0;
			continue;
		}

		bool wr = d.flags & VRING_DESC_F_WRITE;
		if (wr)
			seen_write = true;
		else if (seen_write)
			return vq_fail(vq, "chain %u: readable descriptor after a writable one", head);

		if (d.len) {
			if (add_overflows(total, (uint64_t)d.len, &total) || total > VQ_MAX_CHAIN_BYTES)
				return vq_fail(vq, "chain %u: longer than 4 GiB", head);
			if (c->num_out + c->num_in >= VQ_MAX_IOV)
				return vq_fail(vq, "chain %u: more than %u buffers", head, VQ_MAX_IOV);
			void *p = gmem_ptr(vq->mem, d.addr, d.len);
			if (!p)
				return vq_fail(vq, "chain %u: buffer %#llx+%u not in RAM", head,
					       (unsigned long long)d.addr, d.len);
			struct iovec *iov = &c->iov[c->num_out + c->num_in];
			iov->iov_base = p;
			iov->iov_len = d.len;
			if (wr) {
				c->num_in++;
				c->in_bytes += d.len;
			} else {
				c->num_out++;
				c->out_bytes += d.len;
			}
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

int vq_pop(struct virtq *vq, struct vq_chain *c)
{
	if (!vq->live)
		return vq->broken ? -EIO : 0;

	uint16_t avail_idx = ring_ld16(vq->avail + VRING_AVAIL_IDX);
	uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
	if (pending == 0 && vq->event_idx) {
		/* Ask for a kick when the next buffer arrives, then look once more. */
		ring_st16(vq->used + VRING_USED_AVAIL_EVENT(vq->size), vq->last_avail);
		smp_mb();
		avail_idx = ring_ld16(vq->avail + VRING_AVAIL_IDX);
		pending = (uint16_t)(avail_idx - vq->last_avail);
	}
	if (pending == 0)
		return 0;
	if (pending > vq->size)
		return vq_fail(vq, "avail idx %u is %u entries ahead of %u (size %u)", avail_idx,
			       pending, vq->last_avail, vq->size);
	/* Read the ring entry only after seeing the index that covers it. */
	smp_rmb();
	uint16_t head = ring_ld16(vq->avail + VRING_AVAIL_RING(vq->last_avail & (vq->size - 1)));
	if (head >= vq->size)
		return vq_fail(vq, "avail ring head %u >= queue size %u", head, vq->size);
	int r = vq_walk(vq, head, c);
	if (r < 0)
		return r;
	vq->last_avail++;
	if (vq->event_idx)
		ring_st16(vq->used + VRING_USED_AVAIL_EVENT(vq->size), vq->last_avail);
	return 1;
}

void vq_unpop(struct virtq *vq)
{
	if (vq->live)
		vq->last_avail--;
}

int vq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	if (!vq->live)
		return -EIO;
	if (head >= vq->size)
		return -EINVAL;
	uint8_t *elem = vq->used + VRING_USED_RING(vq->used_idx & (vq->size - 1));
	ring_st32(elem, head);
	ring_st32(elem + 4, len);
	/* The element must be visible before the index that publishes it. */
	smp_wmb();
	vq->used_idx++;
	ring_st16(vq->used + VRING_USED_IDX, vq->used_idx);
	vq->need_signal = true;
	return 0;
}

bool vq_should_notify(struct virtq *vq)
{
	if (!vq->live || !vq->need_signal)
		return false;
	vq->need_signal = false;
	/* Our used->idx store must be visible before we read the driver's suppression state. */
	smp_mb();
	if (vq->event_idx) {
		uint16_t old = vq->signalled_used, now = vq->used_idx;
		bool valid = vq->signalled_valid;
		vq->signalled_used = now;
		vq->signalled_valid = true;
		uint16_t ev = ring_ld16(vq->avail + VRING_AVAIL_USED_EVENT(vq->size));
		return !valid || vring_need_event(ev, now, old);
	}
	return !(ring_ld16(vq->avail + VRING_AVAIL_FLAGS) & VRING_AVAIL_F_NO_INTERRUPT);
}
