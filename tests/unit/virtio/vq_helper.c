/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <sys/mman.h>

#include "vq_helper.h"
#include "fake_platform.h"
#include "devices/virtio/virtio_spec.h"
#include "devices/virtio/virtq.h"

void *tvq_big_ram_map(struct fake_platform *fp, uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(gmem_init_fake(&fp->mem, 0, p, size), 0);
	fp->ram_gpa = 0;
	fp->ram_size = size;
	return p;
}

void tvq_big_ram_unmap(void *ram, uint64_t size)
{
	munmap(ram, size);
}

void *tmem(const struct gmem *mem, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(mem, gpa, len);
	assert_non_null(p);
	return p;
}

static void st16(const struct gmem *mem, uint64_t gpa, uint16_t v)
{
	__atomic_store_n((uint16_t *)tmem(mem, gpa, 2), v, __ATOMIC_RELEASE);
}

static uint16_t ld16(const struct gmem *mem, uint64_t gpa)
{
	return __atomic_load_n((uint16_t *)tmem(mem, gpa, 2), __ATOMIC_ACQUIRE);
}

uint64_t tvq_footprint(uint16_t size)
{
	uint64_t d = ALIGN_UP(VRING_DESC_SIZE(size), 4096);
	uint64_t a = ALIGN_UP(VRING_AVAIL_SIZE(size), 4096);
	uint64_t u = ALIGN_UP(VRING_USED_SIZE(size), 4096);
	return d + a + u;
}

void tvq_layout(struct tvq *t, const struct gmem *mem, uint64_t gpa, uint16_t size)
{
	memset(t, 0, sizeof(*t));
	t->mem = mem;
	t->size = size;
	t->desc = gpa;
	t->avail = t->desc + ALIGN_UP(VRING_DESC_SIZE(size), 4096);
	t->used = t->avail + ALIGN_UP(VRING_AVAIL_SIZE(size), 4096);
	memset(tmem(mem, gpa, tvq_footprint(size)), 0, tvq_footprint(size));
}

void tvq_configure(const struct tvq *t, struct virtq *vq)
{
	vq->size = t->size;
	vq->desc_gpa = t->desc;
	vq->avail_gpa = t->avail;
	vq->used_gpa = t->used;
	vq->enabled = true;
}

void tdesc_write(const struct gmem *mem, uint64_t table_gpa, uint16_t i, uint64_t addr,
		 uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc d = {.addr = addr, .len = len, .flags = flags, .next = next};
	memcpy(tmem(mem, table_gpa + 16ULL * i, 16), &d, 16);
}

void tvq_set_desc(struct tvq *t, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	assert_true(i < t->size);
	tdesc_write(t->mem, t->desc, i, addr, len, flags, next);
}

static void write_chain(const struct gmem *mem, uint64_t table, uint16_t first,
			const struct tbuf *bufs, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		uint16_t flags = bufs[k].write ? VRING_DESC_F_WRITE : 0;
		uint16_t next = 0;
		if (k + 1 < n) {
			flags |= VRING_DESC_F_NEXT;
			next = (uint16_t)(first + k + 1);
		}
		tdesc_write(mem, table, (uint16_t)(first + k), bufs[k].gpa, bufs[k].len, flags, next);
	}
}

uint16_t tvq_add_chain(struct tvq *t, uint16_t first, const struct tbuf *bufs, unsigned n)
{
	assert_true(first + n <= t->size);
	write_chain(t->mem, t->desc, first, bufs, n);
	return first;
}

void tvq_write_indirect(struct tvq *t, uint64_t table_gpa, const struct tbuf *bufs, unsigned n)
{
	write_chain(t->mem, table_gpa, 0, bufs, n);
}

void tvq_set_avail_ring(struct tvq *t, uint16_t slot, uint16_t head)
{
	st16(t->mem, t->avail + VRING_AVAIL_RING(slot % t->size), head);
}

void tvq_set_avail_idx(struct tvq *t, uint16_t idx)
{
	t->avail_idx = idx;
	st16(t->mem, t->avail + VRING_AVAIL_IDX, idx);
}

void tvq_publish(struct tvq *t, uint16_t head)
{
	tvq_set_avail_ring(t, t->avail_idx, head);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	tvq_set_avail_idx(t, (uint16_t)(t->avail_idx + 1));
}

void tvq_set_avail_flags(struct tvq *t, uint16_t flags)
{
	st16(t->mem, t->avail + VRING_AVAIL_FLAGS, flags);
}

void tvq_set_used_event(struct tvq *t, uint16_t ev)
{
	st16(t->mem, t->avail + VRING_AVAIL_USED_EVENT(t->size), ev);
}

uint16_t tvq_used_idx(const struct tvq *t)
{
	return ld16(t->mem, t->used + VRING_USED_IDX);
}

uint16_t tvq_avail_event(const struct tvq *t)
{
	return ld16(t->mem, t->used + VRING_USED_AVAIL_EVENT(t->size));
}

void tvq_used_elem(const struct tvq *t, uint16_t idx, uint32_t *id, uint32_t *len)
{
	const uint8_t *e = tmem(t->mem, t->used + VRING_USED_RING(idx % t->size), 8);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

bool tvq_get_used(struct tvq *t, uint32_t *id, uint32_t *len)
{
	if (tvq_used_idx(t) == t->last_used)
		return false;
	tvq_used_elem(t, t->last_used, id, len);
	t->last_used++;
	return true;
}
