/* SPDX-License-Identifier: MIT */
/* virtio-rng end to end: a driver on fake memory talks to the device through PCI + MMIO. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fake_platform.h"
#include "vq_helper.h"
#include "vpci_helper.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_rng.h"
#include "memory/layout.h"

/* 1 GiB + 2 MiB of lazily-allocated fake RAM, so a 1 GiB buffer is valid guest memory. */
#define RAM_SIZE ((1ULL << 30) + (2ULL << 20))
#define QGPA 0x10000ULL
#define BUF 0x100000ULL
#define ITABLE 0x20000ULL
#define QSIZE 16
#define RNG_PCI_ID 0x1044

struct rx {
	struct fake_platform fp;
	struct pci_host host;
	struct virtio_rng *rng;
	struct tpci p;
	struct tvq t;
	void *ram;
};

static int setup(void **state)
{
	struct rx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	fake_platform_init(&x->fp, 0, 4096);
	x->ram = tvq_big_ram_map(&x->fp, RAM_SIZE);
	assert_int_equal(pci_host_init(&x->host, &x->fp.plat, LAYOUT_PCI_ECAM_START,
				       LAYOUT_PCI_ECAM_SIZE, LAYOUT_PCI_MMIO_START,
				       LAYOUT_PCI_MMIO_SIZE),
			 0);
	assert_int_equal(virtio_rng_create(&x->rng, &x->fp.plat, &x->host), 0);
	tpci_open(&x->p, &x->fp, &x->host, RNG_PCI_ID);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct rx *x = *state;
	pci_host_fini(&x->host);
	virtio_rng_destroy(x->rng);
	tvq_big_ram_unmap(x->ram, RAM_SIZE);
	fake_platform_fini(&x->fp);
	free(x);
	return 0;
}

/* What a guest driver does: negotiate, one queue on MSI-X vector 1, DRIVER_OK. */
static void driver_up(struct rx *x, uint64_t features)
{
	tpci_msix_program(&x->p, 0);
	tpci_msix_program(&x->p, 1);
	tpci_msix_enable(&x->p, true);
	assert_true(tpci_negotiate(&x->p, VIRTIO_BIT(VIRTIO_F_VERSION_1) | features));
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	tvq_layout(&x->t, &x->fp.mem, QGPA, QSIZE);
	tpci_queue_setup(&x->p, 0, &x->t, 1);
	tpci_driver_ok(&x->p);
	assert_false(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
}

static unsigned count_nonzero(const uint8_t *p, size_t n)
{
	unsigned c = 0;
	for (size_t i = 0; i < n; i++)
		c += p[i] != 0;
	return c;
}

static void test_identity(void **state)
{
	struct rx *x = *state;
	assert_int_equal(tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	assert_int_equal(x->p.device, 0); /* no device config space */
	assert_int_equal(x->p.msix_n, 2);
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	assert_int_equal(tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4), 1); /* VERSION_1 */
}

static void test_4k_request(void **state)
{
	struct rx *x = *state;
	uint32_t id, len;
	driver_up(x, 0);

	uint8_t *buf = tmem(&x->fp.mem, BUF, 4096);
	memset(buf, 0, 4096);
	struct tbuf b = {BUF, 4096, true};
	tvq_publish(&x->t, tvq_add_chain(&x->t, 3, &b, 1));
	tpci_notify(&x->p, 0);

	assert_true(tvq_get_used(&x->t, &id, &len));
	assert_int_equal(id, 3);
	assert_int_equal(len, 4096);
	/* ~16 of 4096 random bytes are expected to be zero. */
	assert_true(count_nonzero(buf, 4096) > 3900);
	assert_int_equal(tpci_msi_fired(&x->p, 1), 1);
	assert_int_equal(tpci_msi_fired(&x->p, 0), 0);

	struct virtio_rng_stats st;
	virtio_rng_get_stats(x->rng, &st);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.bytes, 4096);
	assert_int_equal(st.errors, 0);
}

static void test_1g_request_is_capped(void **state)
{
	struct rx *x = *state;
	uint32_t id, len;
	driver_up(x, 0);

	struct tbuf b = {BUF, 1u << 30, true};
	tvq_publish(&x->t, tvq_add_chain(&x->t, 0, &b, 1));
	tpci_notify(&x->p, 0);
	assert_true(tvq_get_used(&x->t, &id, &len));
	assert_int_equal(len, VIRTIO_RNG_MAX_REQ);
	uint8_t *buf = tmem(&x->fp.mem, BUF, VIRTIO_RNG_MAX_REQ + 4096);
	assert_true(count_nonzero(buf + VIRTIO_RNG_MAX_REQ - 4096, 4096) > 3900);
	/* Nothing written past the cap. */
	assert_int_equal(count_nonzero(buf + VIRTIO_RNG_MAX_REQ, 4096), 0);

	/* The cap also holds across several buffers of one chain. */
	struct tbuf bufs[3] = {{BUF, 30000, true}, {BUF + 0x100000, 30000, true},
			       {BUF + 0x200000, 30000, true}};
	tvq_publish(&x->t, tvq_add_chain(&x->t, 0, bufs, 3));
	tpci_notify(&x->p, 0);
	assert_true(tvq_get_used(&x->t, &id, &len));
	assert_int_equal(len, VIRTIO_RNG_MAX_REQ);
	buf = tmem(&x->fp.mem, BUF + 0x200000, 30000);
	unsigned third = VIRTIO_RNG_MAX_REQ - 60000; /* what is left for the last buffer */
	assert_true(count_nonzero(buf, third) > third * 9 / 10);
	assert_int_equal(count_nonzero(buf + third, 30000 - third), 0);
}

static void test_mixed_and_indirect(void **state)
{
	struct rx *x = *state;
	uint32_t id, len;
	driver_up(x, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));

	/* Readable buffers are left alone, writable ones filled. */
	uint8_t *ro = tmem(&x->fp.mem, BUF, 64);
	memset(ro, 0xab, 64);
	struct tbuf bufs[3] = {{BUF, 64, false}, {BUF + 0x1000, 100, true}, {BUF + 0x2000, 300, true}};
	tvq_publish(&x->t, tvq_add_chain(&x->t, 0, bufs, 3));
	tpci_notify(&x->p, 0);
	assert_true(tvq_get_used(&x->t, &id, &len));
	assert_int_equal(len, 400);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(ro[i], 0xab);

	/* Indirect table with two writable buffers. */
	struct tbuf ib[2] = {{BUF + 0x3000, 512, true}, {BUF + 0x4000, 512, true}};
	tvq_write_indirect(&x->t, ITABLE, ib, 2);
	tvq_set_desc(&x->t, 5, ITABLE, 32, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&x->t, 5);
	tpci_notify(&x->p, 0);
	assert_true(tvq_get_used(&x->t, &id, &len));
	assert_int_equal(id, 5);
	assert_int_equal(len, 1024);
	assert_true(count_nonzero(tmem(&x->fp.mem, BUF + 0x4000, 512), 512) > 450);
	/* EVENT_IDX: the device asks to be kicked for the next entry. */
	assert_int_equal(tvq_avail_event(&x->t), 2);
}

static void test_no_writable_buffer(void **state)
{
	struct rx *x = *state;
	uint32_t id, len;
	driver_up(x, 0);
	struct tbuf b = {BUF, 64, false};
	tvq_publish(&x->t, tvq_add_chain(&x->t, 0, &b, 1));
	tpci_notify(&x->p, 0);
	assert_true(tvq_get_used(&x->t, &id, &len));
	assert_int_equal(len, 0);
	struct virtio_rng_stats st;
	virtio_rng_get_stats(x->rng, &st);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.errors, 1);
	assert_false(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_batch(void **state)
{
	struct rx *x = *state;
	uint32_t id, len;
	driver_up(x, 0);
	for (uint16_t i = 0; i < QSIZE; i++) {
		struct tbuf b = {BUF + 0x1000ULL * i, 16u + i, true};
		tvq_publish(&x->t, tvq_add_chain(&x->t, i, &b, 1));
	}
	tpci_notify(&x->p, 0);
	for (uint16_t i = 0; i < QSIZE; i++) {
		assert_true(tvq_get_used(&x->t, &id, &len));
		assert_int_equal(id, i);
		assert_int_equal(len, 16u + i);
	}
	assert_int_equal(tpci_msi_fired(&x->p, 1), 1); /* one interrupt for the batch */
}

static void test_hostile_then_reset(void **state)
{
	struct rx *x = *state;
	uint32_t id, len;
	driver_up(x, 0);
	/* A 2-descriptor loop. */
	tvq_set_desc(&x->t, 0, BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	tvq_set_desc(&x->t, 1, BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
	tvq_publish(&x->t, 0);
	tpci_notify(&x->p, 0);
	assert_true(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(tvq_used_idx(&x->t), 0);
	assert_int_equal(tpci_msi_fired(&x->p, 0), 1); /* config interrupt */

	/* Reset, bring up, works. */
	driver_up(x, 0);
	struct tbuf b = {BUF, 32, true};
	tvq_publish(&x->t, tvq_add_chain(&x->t, 0, &b, 1));
	tpci_notify(&x->p, 0);
	assert_true(tvq_get_used(&x->t, &id, &len));
	assert_int_equal(len, 32);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_4k_request),
		T(test_1g_request_is_capped),
		T(test_mixed_and_indirect),
		T(test_no_writable_buffer),
		T(test_batch),
		T(test_hostile_then_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
