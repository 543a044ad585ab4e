/* SPDX-License-Identifier: MIT */
/*
 * A virtio-blk device on the fake platform, driven like a guest driver would (PCI config
 * space, MMIO, split rings in fake RAM), with its backend either a real raw file
 * (io_uring or threads) or a scripted engine whose requests finish when the test says.
 * Completions are delivered by blk_poll() from the test thread (no I/O loop).
 */
#ifndef VIREO_TESTS_VIRTIO_BLK_HELPER_H
#define VIREO_TESTS_VIRTIO_BLK_HELPER_H

#include "fake_platform.h"
#include "vq_helper.h"
#include "vpci_helper.h"
#include "block/blk_backend.h"
#include "common/evloop.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_spec.h"

#define VBX_RAM (64ULL << 20)
#define VBX_DISK (8u << 20)
#define VBX_QSIZE 16
#define VBX_QGPA(q) (0x10000ULL + 0x10000ULL * (q))
#define VBX_HDR(q, h) (0x100000ULL + 0x1000ULL * (q) + 64ULL * (h))
#define VBX_STATUS(q, h) (0x180000ULL + 0x1000ULL * (q) + (h))
#define VBX_DATA 0x200000ULL
#define VBX_PCI_ID 0x1042

/* Scripted engine: requests wait in sub[] until vbx_script_finish(). */
struct vbx_script {
	struct blk_req *sub[256];
	int nsub;
	int drains;
};

struct vbx {
	struct fake_platform fp;
	void *ram;
	struct pci_host host;
	struct blk_backend *be;
	struct virtio_blk *blk;
	struct tpci p;
	struct tvq t[4];
	unsigned nq;
	uint16_t cursor[4]; /* next free descriptor per queue */
	char path[64];
	struct vbx_script script;
};

uint8_t vbx_pat(uint64_t off, unsigned seed);
/* Fake platform, PCI host, a VBX_DISK pattern file (vbx_pat seed 0). */
void vbx_init(struct vbx *x);
/* Open the file with cfg's options (path filled in), create the device with nq queues. */
void vbx_attach_file(struct vbx *x, struct blk_config *cfg, unsigned nq);
/* The same with completions delivered on loop (e.g. a running I/O thread). */
void vbx_attach_file_loop(struct vbx *x, struct blk_config *cfg, unsigned nq,
			  struct evloop *loop);
/* A device on the scripted engine instead (info: size etc.). */
void vbx_attach_script(struct vbx *x, const struct blk_info *info, unsigned nq);
/* A device on a backend engine of the test's own (priv: the engine's state). */
void vbx_attach_ops(struct vbx *x, const struct blk_backend_ops *ops, void *priv,
		    const struct blk_info *info, unsigned nq);
void vbx_fini(struct vbx *x);
/* cmocka fixtures: a calloc'ed, initialised struct vbx in *state, and its teardown. */
int vbx_setup(void **state);
int vbx_teardown(void **state);

/* Negotiate offered & want (VERSION_1 added), set up every queue, DRIVER_OK. MSI-X vector
 * 0 is the config vector, q+1 queue q's. */
void vbx_up(struct vbx *x, uint64_t want);
uint64_t vbx_offered(struct vbx *x);
uint64_t vbx_cfg(struct vbx *x, uint32_t off, unsigned len);

/* Build a chain: header (type, sector) as its own readable descriptor at VBX_HDR, then the
 * given buffers, then the status byte at VBX_STATUS (set to 0xff). Returns the head. */
uint16_t vbx_req(struct vbx *x, unsigned q, uint32_t type, uint64_t sector,
		 const struct tbuf *data, unsigned ndata);
/* Raw chain of bufs (no header/status added). */
uint16_t vbx_chain(struct vbx *x, unsigned q, const struct tbuf *bufs, unsigned n);
void vbx_kick(struct vbx *x, unsigned q, uint16_t head);
/* Poll completions until queue q's used index reaches n (fails after 5 s). */
void vbx_wait_used(struct vbx *x, unsigned q, uint16_t n);
uint8_t vbx_status(struct vbx *x, unsigned q, uint16_t head);
/* One request start to finish; returns the status byte. */
uint8_t vbx_do(struct vbx *x, unsigned q, uint32_t type, uint64_t sector,
	       const struct tbuf *data, unsigned ndata);
/* Read the disk file directly. */
void vbx_file_read(struct vbx *x, uint64_t off, void *buf, size_t len);
void vbx_stats(struct vbx *x, struct virtio_blk_stats *st);

void vbx_script_finish(struct vbx *x, int i, int res);

#endif
