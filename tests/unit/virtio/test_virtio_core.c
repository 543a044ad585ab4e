/* SPDX-License-Identifier: MIT */
/* Virtio device core: feature negotiation, status machine, queue config, NEEDS_RESET. */
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
#include "devices/virtio/virtio.h"

#define RAM_SIZE (1ULL << 20)
#define Q0GPA 0x10000ULL
#define Q1GPA 0x20000ULL
#define BUF 0x40000ULL
#define TEST_F_FOO 3   /* a device feature we offer */
#define TEST_F_BAR 5   /* offered, but only valid together with FOO (features_ok hook) */

#define ACK VIRTIO_STATUS_ACKNOWLEDGE
#define DRV VIRTIO_STATUS_DRIVER
#define FOK VIRTIO_STATUS_FEATURES_OK
#define DOK VIRTIO_STATUS_DRIVER_OK

/* A device that completes every request with its writable length. */
struct tdev {
	struct virtio_dev vdev;
	struct fake_platform fp;
	struct tvq t[2];
	struct vq_chain c;
	uint32_t cfg[2]; /* cfg[0] read-only, cfg[1] writable */
	unsigned notified[2], completed[2], resets, activates;
	int activate_ret;
	/* recorded by the fake transport */
	unsigned irq_queue[2], irq_config;
};

static void tdev_config_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	struct tdev *td = d->opaque;
	memcpy(data, (uint8_t *)td->cfg + off, len);
}

static void tdev_config_write(struct virtio_dev *d, uint32_t off, const void *data, unsigned len)
{
	struct tdev *td = d->opaque;
	if (off >= 4)
		memcpy((uint8_t *)td->cfg + off, data, len);
}

static bool tdev_features_ok(struct virtio_dev *d, uint64_t f)
{
	(void)d;
	return !(f & VIRTIO_BIT(TEST_F_BAR)) || (f & VIRTIO_BIT(TEST_F_FOO));
}

static int tdev_activate(struct virtio_dev *d)
{
	struct tdev *td = d->opaque;
	td->activates++;
	return td->activate_ret;
}

static void tdev_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct tdev *td = d->opaque;
	int r;
	td->notified[q]++;
	while ((r = virtio_dev_queue_pop(d, q, &td->c)) > 0) {
		if (virtio_dev_queue_push(d, q, td->c.head, (uint32_t)td->c.in_bytes) == 0)
			td->completed[q]++;
	}
	virtio_dev_queue_signal(d, q);
}

static void tdev_reset(struct virtio_dev *d)
{
	struct tdev *td = d->opaque;
	td->resets++;
}

static const struct virtio_dev_ops tdev_ops = {
	.name = "test-dev",
	.device_id = 42,
	.features = VIRTIO_BIT(TEST_F_FOO) | VIRTIO_BIT(TEST_F_BAR),
	.num_queues = 2,
	.max_queue_size = 64,
	.config_size = 8,
	.config_read = tdev_config_read,
	.config_write = tdev_config_write,
	.features_ok = tdev_features_ok,
	.activate = tdev_activate,
	.queue_notify = tdev_queue_notify,
	.reset = tdev_reset,
};

static void fake_interrupt(void *transport, unsigned q)
{
	struct tdev *td = transport;
	if (q == VIRTIO_IRQ_CONFIG)
		td->irq_config++;
	else if (q < 2)
		td->irq_queue[q]++;
	else
		fail_msg("interrupt for bad queue %u", q);
}

static const struct virtio_transport_ops fake_tops = {.interrupt = fake_interrupt};

static int setup(void **state)
{
	struct tdev *td = calloc(1, sizeof(*td));
	assert_non_null(td);
	fake_platform_init(&td->fp, 0, RAM_SIZE);
	assert_int_equal(virtio_dev_init(&td->vdev, &tdev_ops, &td->fp.mem, td), 0);
	virtio_dev_set_transport(&td->vdev, &fake_tops, td);
	td->cfg[0] = 0x11223344;
	*state = td;
	return 0;
}

static int teardown(void **state)
{
	struct tdev *td = *state;
	virtio_dev_fini(&td->vdev);
	fake_platform_fini(&td->fp);
	free(td);
	return 0;
}

static void set_features(struct virtio_dev *d, uint64_t f)
{
	virtio_dev_set_driver_features(d, 0, (uint32_t)f);
	virtio_dev_set_driver_features(d, 1, (uint32_t)(f >> 32));
}

/* Reset, ACK, DRIVER, features, FEATURES_OK; returns whether FEATURES_OK stuck. */
static bool negotiate(struct virtio_dev *d, uint64_t f)
{
	virtio_dev_set_status(d, 0);
	virtio_dev_set_status(d, ACK);
	virtio_dev_set_status(d, ACK | DRV);
	set_features(d, f);
	virtio_dev_set_status(d, ACK | DRV | FOK);
	return virtio_dev_status(d) & FOK;
}

/* Driver-side queue setup through the core's setters. */
static void setup_queue(struct tdev *td, unsigned q, uint64_t gpa, uint16_t size)
{
	tvq_layout(&td->t[q], &td->fp.mem, gpa, size);
	assert_true(virtio_dev_queue_set_size(&td->vdev, q, size));
	assert_true(virtio_dev_queue_set_addr(&td->vdev, q, VIRTIO_AREA_DESC, td->t[q].desc));
	assert_true(virtio_dev_queue_set_addr(&td->vdev, q, VIRTIO_AREA_DRIVER, td->t[q].avail));
	assert_true(virtio_dev_queue_set_addr(&td->vdev, q, VIRTIO_AREA_DEVICE, td->t[q].used));
	assert_true(virtio_dev_queue_set_enable(&td->vdev, q, 1));
}

static void bring_up(struct tdev *td, uint64_t features)
{
	assert_true(negotiate(&td->vdev, features));
	setup_queue(td, 0, Q0GPA, 16);
	setup_queue(td, 1, Q1GPA, 64);
	virtio_dev_set_status(&td->vdev, ACK | DRV | FOK | DOK);
	assert_int_equal(virtio_dev_status(&td->vdev), ACK | DRV | FOK | DOK);
}

static void submit(struct tdev *td, unsigned q, uint16_t head, uint32_t wlen)
{
	struct tbuf b = {BUF + 0x1000 * q, wlen, true};
	tvq_publish(&td->t[q], tvq_add_chain(&td->t[q], head, &b, 1));
	virtio_dev_kick(&td->vdev, q);
}

static const uint64_t V1 = VIRTIO_BIT(VIRTIO_F_VERSION_1);

static void test_features_offered(void **state)
{
	struct tdev *td = *state;
	uint64_t want = VIRTIO_BIT(TEST_F_FOO) | VIRTIO_BIT(TEST_F_BAR) | VIRTIO_CORE_FEATURES;
	assert_int_equal(virtio_dev_device_features(&td->vdev, 0), (uint32_t)want);
	assert_int_equal(virtio_dev_device_features(&td->vdev, 1), (uint32_t)(want >> 32));
	assert_int_equal(virtio_dev_device_features(&td->vdev, 2), 0);
	assert_int_equal(virtio_dev_device_features(&td->vdev, 0xffffffff), 0);
}

static void test_negotiation(void **state)
{
	struct tdev *td = *state;
	struct virtio_dev *d = &td->vdev;

	/* Subset including VERSION_1: accepted and recorded. */
	assert_true(negotiate(d, V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(TEST_F_FOO)));
	assert_true(virtio_dev_has_feature(d, TEST_F_FOO));
	assert_true(virtio_dev_has_feature(d, VIRTIO_F_EVENT_IDX));
	assert_false(virtio_dev_has_feature(d, VIRTIO_F_INDIRECT_DESC));
	assert_int_equal(virtio_dev_driver_features(d, 0),
			 (uint32_t)(VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(TEST_F_FOO)));

	/* Feature writes after FEATURES_OK are ignored. */
	set_features(d, V1 | VIRTIO_BIT(TEST_F_BAR));
	assert_true(virtio_dev_has_feature(d, TEST_F_FOO));
	assert_int_equal(virtio_dev_driver_features(d, 0),
			 (uint32_t)(VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(TEST_F_FOO)));

	/* Missing VERSION_1 (a legacy driver). */
	assert_false(negotiate(d, VIRTIO_BIT(TEST_F_FOO)));
	assert_int_equal(virtio_dev_status(d), ACK | DRV);
	/* Bits we never offered, in word 0, word 1, and beyond. */
	assert_false(negotiate(d, V1 | VIRTIO_BIT(7)));
	assert_false(negotiate(d, V1 | VIRTIO_BIT(40)));
	virtio_dev_set_status(d, 0);
	virtio_dev_set_status(d, ACK | DRV);
	set_features(d, V1);
	virtio_dev_set_driver_features(d, 2, 1);
	virtio_dev_set_status(d, ACK | DRV | FOK);
	assert_false(virtio_dev_status(d) & FOK);
	/* ... and a zero write there is harmless. */
	virtio_dev_set_status(d, 0);
	virtio_dev_set_status(d, ACK | DRV);
	set_features(d, V1);
	virtio_dev_set_driver_features(d, 3, 0);
	virtio_dev_set_status(d, ACK | DRV | FOK);
	assert_true(virtio_dev_status(d) & FOK);
	/* Device-specific rule (BAR needs FOO) via the features_ok hook. */
	assert_false(negotiate(d, V1 | VIRTIO_BIT(TEST_F_BAR)));
	assert_true(negotiate(d, V1 | VIRTIO_BIT(TEST_F_BAR) | VIRTIO_BIT(TEST_F_FOO)));
	/* DRIVER_OK cannot follow a refused FEATURES_OK. */
	assert_false(negotiate(d, 0));
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK);
	assert_int_equal(virtio_dev_status(d), ACK | DRV);
	assert_int_equal(td->activates, 0);
}

static void test_status_machine(void **state)
{
	struct tdev *td = *state;
	struct virtio_dev *d = &td->vdev;

	/* Out of order bits are not taken. */
	virtio_dev_set_status(d, DRV);
	assert_int_equal(virtio_dev_status(d), 0);
	virtio_dev_set_status(d, ACK | FOK);
	assert_int_equal(virtio_dev_status(d), ACK);
	virtio_dev_set_status(d, ACK | DOK);
	assert_int_equal(virtio_dev_status(d), ACK);
	/* ACK+DRIVER in one write is fine. */
	virtio_dev_set_status(d, ACK | DRV);
	assert_int_equal(virtio_dev_status(d), ACK | DRV);
	/* Clearing bits without a reset is ignored as a whole. */
	virtio_dev_set_status(d, DRV);
	assert_int_equal(virtio_dev_status(d), ACK | DRV);
	/* The driver cannot set NEEDS_RESET, nor unknown bits 0x10/0x20. */
	virtio_dev_set_status(d, ACK | DRV | VIRTIO_STATUS_NEEDS_RESET | 0x30);
	assert_int_equal(virtio_dev_status(d), ACK | DRV);
	set_features(d, V1);
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK); /* both at once: taken in order */
	assert_int_equal(virtio_dev_status(d), ACK | DRV | FOK | DOK);
	assert_int_equal(td->activates, 1);
	/* FAILED may be set at any time. */
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK | VIRTIO_STATUS_FAILED);
	assert_true(virtio_dev_status(d) & VIRTIO_STATUS_FAILED);
	/* Writing 0 resets everything. */
	virtio_dev_set_status(d, 0);
	assert_int_equal(virtio_dev_status(d), 0);
	assert_int_equal(td->resets, 1);
	assert_int_equal(virtio_dev_driver_features(d, 1), 0);
	assert_false(virtio_dev_has_feature(d, VIRTIO_F_VERSION_1));
	virtio_dev_set_status(d, ACK | DRV);
	assert_int_equal(virtio_dev_status(d), ACK | DRV);
}

static void test_queue_config_frozen(void **state)
{
	struct tdev *td = *state;
	struct virtio_dev *d = &td->vdev;

	assert_non_null(virtio_dev_queue(d, 1));
	assert_null(virtio_dev_queue(d, 2));
	assert_int_equal(virtio_dev_queue(d, 0)->size, 64); /* max until written */
	assert_false(virtio_dev_queue_set_size(d, 2, 16));
	assert_false(virtio_dev_queue_set_addr(d, 7, VIRTIO_AREA_DESC, 0x1000));
	assert_false(virtio_dev_queue_set_enable(d, 2, 1));

	assert_true(negotiate(d, V1));
	setup_queue(td, 0, Q0GPA, 16);
	/* Enabled: frozen. Writing 0 to queue_enable is not allowed either. */
	assert_false(virtio_dev_queue_set_size(d, 0, 32));
	assert_false(virtio_dev_queue_set_addr(d, 0, VIRTIO_AREA_DESC, 0x1000));
	assert_false(virtio_dev_queue_set_enable(d, 0, 0));
	assert_int_equal(virtio_dev_queue(d, 0)->size, 16);
	assert_int_equal(virtio_dev_queue(d, 0)->desc_gpa, Q0GPA);
	assert_true(virtio_dev_queue(d, 0)->enabled);
	/* Queue 1 stays configurable until DRIVER_OK. */
	assert_true(virtio_dev_queue_set_size(d, 1, 32));
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK);
	assert_false(virtio_dev_queue_set_size(d, 1, 16));
	assert_false(virtio_dev_queue_set_addr(d, 1, VIRTIO_AREA_DEVICE, 0x1000));
	assert_false(virtio_dev_queue_set_enable(d, 1, 1));
	assert_int_equal(virtio_dev_queue(d, 1)->size, 32);
	assert_false(virtio_dev_queue(d, 1)->enabled);
	/* Queue 0 runs, queue 1 (never enabled) ignores kicks. */
	submit(td, 0, 0, 10);
	assert_int_equal(td->completed[0], 1);
	virtio_dev_kick(d, 1);
	virtio_dev_kick(d, 5);
	assert_int_equal(td->notified[1], 0);
	/* Reset brings back the defaults. */
	virtio_dev_set_status(d, 0);
	assert_int_equal(virtio_dev_queue(d, 0)->size, 64);
	assert_int_equal(virtio_dev_queue(d, 0)->desc_gpa, 0);
	assert_false(virtio_dev_queue(d, 0)->enabled);
	assert_true(virtio_dev_queue_set_size(d, 0, 8));
}

static void test_kick_and_interrupts(void **state)
{
	struct tdev *td = *state;
	struct virtio_dev *d = &td->vdev;

	/* Before DRIVER_OK kicks do nothing. */
	assert_true(negotiate(d, V1));
	setup_queue(td, 0, Q0GPA, 16);
	submit(td, 0, 0, 10);
	assert_int_equal(td->notified[0], 0);
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK);
	/* The buffer published before DRIVER_OK is served by the next kick. */
	virtio_dev_kick(d, 0);
	assert_int_equal(td->completed[0], 1);
	assert_int_equal(td->irq_queue[0], 1);
	uint32_t id, len;
	assert_true(tvq_get_used(&td->t[0], &id, &len));
	assert_int_equal(len, 10);

	/* The driver suppresses interrupts. */
	tvq_set_avail_flags(&td->t[0], VRING_AVAIL_F_NO_INTERRUPT);
	submit(td, 0, 1, 20);
	assert_int_equal(td->completed[0], 2);
	assert_int_equal(td->irq_queue[0], 1);
	/* A kick with nothing new raises nothing. */
	tvq_set_avail_flags(&td->t[0], 0);
	virtio_dev_kick(d, 0);
	assert_int_equal(td->irq_queue[0], 1);
	assert_int_equal(td->irq_config, 0);
}

static void test_event_idx_through_core(void **state)
{
	struct tdev *td = *state;
	bring_up(td, V1 | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	submit(td, 1, 0, 4);
	assert_int_equal(td->irq_queue[1], 1);
	tvq_set_used_event(&td->t[1], 2); /* no interrupt until used idx passes 2 */
	submit(td, 1, 0, 4);
	assert_int_equal(td->irq_queue[1], 1);
	submit(td, 1, 0, 4);
	assert_int_equal(td->irq_queue[1], 2);
	assert_int_equal(tvq_avail_event(&td->t[1]), 3);
}

static void test_needs_reset_on_bad_chain(void **state)
{
	struct tdev *td = *state;
	struct virtio_dev *d = &td->vdev;

	bring_up(td, V1);
	/* A loop on queue 0. */
	tvq_set_desc(&td->t[0], 0, BUF, 8, VRING_DESC_F_NEXT, 0);
	tvq_publish(&td->t[0], 0);
	virtio_dev_kick(d, 0);
	assert_true(virtio_dev_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(td->irq_config, 1);
	assert_int_equal(td->completed[0], 0);
	/* Queue 0 is stopped: new good buffers are not served. */
	submit(td, 0, 1, 8);
	assert_int_equal(td->completed[0], 0);
	assert_int_equal(td->irq_config, 1); /* announced once */
	/* Queue 1 still works. */
	submit(td, 1, 0, 8);
	assert_int_equal(td->completed[1], 1);
	/* The driver's own status writes keep NEEDS_RESET (it is device-owned). */
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK);
	assert_true(virtio_dev_status(d) & VIRTIO_STATUS_NEEDS_RESET);

	/* After reset everything works again. */
	memset(td->completed, 0, sizeof(td->completed));
	bring_up(td, V1);
	submit(td, 0, 0, 8);
	assert_int_equal(td->completed[0], 1);
	assert_false(virtio_dev_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_needs_reset_on_bad_queue_config(void **state)
{
	struct tdev *td = *state;
	struct virtio_dev *d = &td->vdev;

	assert_true(negotiate(d, V1));
	setup_queue(td, 0, Q0GPA, 16);
	/* Queue 1: size not a power of two. */
	assert_true(virtio_dev_queue_set_size(d, 1, 24));
	assert_true(virtio_dev_queue_set_addr(d, 1, VIRTIO_AREA_DESC, Q1GPA));
	assert_true(virtio_dev_queue_set_addr(d, 1, VIRTIO_AREA_DRIVER, Q1GPA + 0x1000));
	assert_true(virtio_dev_queue_set_addr(d, 1, VIRTIO_AREA_DEVICE, Q1GPA + 0x2000));
	assert_true(virtio_dev_queue_set_enable(d, 1, 1));
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK);
	assert_int_equal(virtio_dev_status(d), ACK | DRV | FOK | DOK | VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(td->irq_config, 1);
	assert_int_equal(td->activates, 0);

	/* Ring outside RAM, after reset. */
	assert_true(negotiate(d, V1));
	setup_queue(td, 0, Q0GPA, 16);
	assert_true(virtio_dev_queue_set_addr(d, 1, VIRTIO_AREA_DEVICE, RAM_SIZE));
	assert_true(virtio_dev_queue_set_enable(d, 1, 1));
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK);
	assert_true(virtio_dev_status(d) & VIRTIO_STATUS_NEEDS_RESET);

	/* The device's own activate failing does the same. */
	td->activate_ret = -EIO;
	assert_true(negotiate(d, V1));
	setup_queue(td, 0, Q0GPA, 16);
	virtio_dev_set_status(d, ACK | DRV | FOK | DOK);
	assert_int_equal(td->activates, 1);
	assert_true(virtio_dev_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	td->activate_ret = 0;
	bring_up(td, V1);
	assert_false(virtio_dev_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_config_space(void **state)
{
	struct tdev *td = *state;
	struct virtio_dev *d = &td->vdev;
	uint32_t v = 0;
	uint8_t b[8];

	virtio_dev_config_read(d, 0, &v, 4);
	assert_int_equal(v, 0x11223344);
	virtio_dev_config_read(d, 1, b, 2);
	assert_int_equal(b[0], 0x33);
	assert_int_equal(b[1], 0x22);
	v = 0xabcd;
	virtio_dev_config_write(d, 4, &v, 4);
	assert_int_equal(td->cfg[1], 0xabcd);
	/* Out of range: reads zero, writes ignored, never reach the device. */
	memset(b, 0xee, sizeof(b));
	virtio_dev_config_read(d, 6, b, 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(b[i], 0);
	virtio_dev_config_read(d, 0xfffffffe, b, 4);
	assert_int_equal(b[0], 0);
	virtio_dev_config_write(d, 8, &v, 1);
	virtio_dev_config_write(d, 0xffffffff, &v, 4);

	/* Generation bumps on every change; the interrupt only once the driver is up. */
	uint8_t g = virtio_dev_config_generation(d);
	virtio_dev_config_changed(d);
	assert_int_equal(virtio_dev_config_generation(d), (uint8_t)(g + 1));
	assert_int_equal(td->irq_config, 0);
	bring_up(td, V1);
	virtio_dev_config_changed(d);
	assert_int_equal(virtio_dev_config_generation(d), (uint8_t)(g + 2));
	assert_int_equal(td->irq_config, 1);
}

static void test_init_rejects_bad_ops(void **state)
{
	(void)state;
	struct virtio_dev d;
	struct gmem m = {0};
	struct virtio_dev_ops o = tdev_ops;
	o.max_queue_size = 100;
	assert_int_equal(virtio_dev_init(&d, &o, &m, NULL), -EINVAL);
	o = tdev_ops;
	o.num_queues = 0;
	assert_int_equal(virtio_dev_init(&d, &o, &m, NULL), -EINVAL);
	o = tdev_ops;
	o.queue_notify = NULL;
	assert_int_equal(virtio_dev_init(&d, &o, &m, NULL), -EINVAL);
	o = tdev_ops;
	o.config_size = VIRTIO_MAX_CONFIG_SIZE + 1;
	assert_int_equal(virtio_dev_init(&d, &o, &m, NULL), -EINVAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_features_offered),
		T(test_negotiation),
		T(test_status_machine),
		T(test_queue_config_frozen),
		T(test_kick_and_interrupts),
		T(test_event_idx_through_core),
		T(test_needs_reset_on_bad_chain),
		T(test_needs_reset_on_bad_queue_config),
		T(test_config_space),
		cmocka_unit_test(test_init_rejects_bad_ops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
