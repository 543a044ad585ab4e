/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the split virtqueue (src/devices/virtio/virtq.c).
 *
 * The input is the guest: a small header choosing the queue size, features and ring
 * placement, then the contents of guest memory (descriptor table, avail ring, indirect
 * tables, buffers: whatever the fuzzer writes). The device side pops chains until the
 * queue is empty or broken, touches both ends of every iovec (ASan checks they really
 * are inside guest memory) and pushes them back, deciding notifications as a device does.
 * After a break the queue is reset and re-activated once to cover that path too.
 *
 * Input: [0] log2 queue size (mod 11) [1] flags: 1 EVENT_IDX, 2 INDIRECT, 4 raw ring
 *        addresses from [2..7], 8 unpop+re-pop the first chain   [8..] guest memory.
 */
#include "devices/virtio/virtq.h"
#include "devices/virtio/virtio_spec.h"
#include "common/log.h"
#include "memory/gmem.h"

#include <stdlib.h>
#include <string.h>

#define MEM_GPA 0x10000ULL
#define MEM_SIZE 0x10000ULL /* 64 KiB: the rings of a 1024-entry queue fit */
#define HDR 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t raw_addr(const uint8_t *b)
{
	/* 16 bits of offset, sometimes outside guest memory, sometimes misaligned. */
	return MEM_GPA - 0x100 + (uint64_t)(b[0] | b[1] << 8);
}

/* Touch the first and last byte of every buffer, write into the writable ones. */
static uint32_t consume(const struct vq_chain *c)
{
	volatile uint8_t sink = 0;
	for (unsigned i = 0; i < c->num_out + c->num_in; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t n = c->iov[i].iov_len;
		if (i < c->num_out) {
			sink ^= p[0];
			sink ^= p[n - 1];
		} else {
			p[0] = 0xaa;
			p[n - 1] = 0x55;
		}
	}
	(void)sink;
	return c->in_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)c->in_bytes;
}

static void run(struct virtq *vq, struct vq_chain *c, bool unpop)
{
	/* Each pop consumes an avail entry and memory does not change under us, so the loop
	 * ends after at most size pops; the bound is a second guard. */
	for (unsigned n = 0; n <= 2u * vq->size + 2; n++) {
		int r = vq_pop(vq, c);
		if (r <= 0)
			return;
		if (unpop && n == 0) {
			vq_unpop(vq);
			if (vq_pop(vq, c) != 1)
				abort(); /* the same chain must come back */
		}
		uint32_t len = consume(c);
		if (vq_push(vq, c->head, len) != 0)
			abort(); /* a popped head is always valid while the queue is live */
		if (n % 3 == 0)
			(void)vq_should_notify(vq);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct gmem mem;
	struct virtq vq;
	struct vq_chain *c;
	uint8_t *ram;

	if (!quiet) {
		vlog_set_level(VLOG_ERR);
		quiet = true;
	}
	if (size < HDR)
		return 0;
	ram = calloc(1, MEM_SIZE);
	c = malloc(sizeof(*c));
	if (!ram || !c || gmem_init_fake(&mem, MEM_GPA, ram, MEM_SIZE) < 0)
		goto out;
	memcpy(ram, data + HDR, MIN(size - HDR, MEM_SIZE));

	uint16_t qsize = (uint16_t)(1u << (data[0] % 11));
	bool event_idx = data[1] & 1, indirect = data[1] & 2, unpop = data[1] & 8;
	vq_init(&vq, "fuzz", 0, VQ_MAX_SIZE);
	vq.size = qsize;
	if (data[1] & 4) {
		vq.desc_gpa = raw_addr(data + 2);
		vq.avail_gpa = raw_addr(data + 4);
		vq.used_gpa = raw_addr(data + 6);
	} else {
		vq.desc_gpa = MEM_GPA;
		vq.avail_gpa = MEM_GPA + VRING_DESC_SIZE(qsize);
		vq.used_gpa = ALIGN_UP(vq.avail_gpa + VRING_AVAIL_SIZE(qsize), 4);
	}
	vq.enabled = true;
	if (vq_activate(&vq, &mem, event_idx, indirect) == 0) {
		run(&vq, c, unpop);
		if (vq_is_broken(&vq)) {
			/* What a device reset does, then the same guest memory once more. */
			uint64_t d = vq.desc_gpa, a = vq.avail_gpa, u = vq.used_gpa;
			vq_reset(&vq);
			vq.size = qsize;
			vq.desc_gpa = d;
			vq.avail_gpa = a;
			vq.used_gpa = u;
			vq.enabled = true;
			if (vq_activate(&vq, &mem, event_idx, indirect) == 0)
				run(&vq, c, false);
		}
	}
out:
	free(c);
	free(ram);
	return 0;
}
