/* SPDX-License-Identifier: MIT */
/*
 * The KVM platform's device I/O loops (--io-threads): io_loop_next hands them out round
 * robin, none without them (devices then use the main loop), and the count restarts when
 * the platform is set up again for the next boot. No KVM needed: only the loop table is
 * exercised.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <cmocka.h>

#include "common/evloop.h"
#include "machine/platform_kvm.h"

static void test_round_robin(void **state)
{
	(void)state;
	struct platform_kvm pk;
	struct evloop main_loop, io[3];
	assert_int_equal(platform_kvm_init(&pk, NULL, NULL, &main_loop, NULL, NULL), 0);
	const struct platform *p = &pk.plat;
	assert_ptr_equal(p->loop, &main_loop);
	assert_non_null(p->ops->io_loop_next);
	assert_null(p->ops->io_loop_next(p->ctx)); /* --io-threads 1 */

	platform_kvm_set_io_loops(&pk, io, 3);
	for (unsigned i = 0; i < 7; i++)
		assert_ptr_equal(p->ops->io_loop_next(p->ctx), &io[i % 3]);
	platform_kvm_fini(&pk);

	/* The next boot's platform starts the round again. */
	assert_int_equal(platform_kvm_init(&pk, NULL, NULL, &main_loop, NULL, NULL), 0);
	platform_kvm_set_io_loops(&pk, io, 2);
	assert_ptr_equal(p->ops->io_loop_next(p->ctx), &io[0]);
	assert_ptr_equal(p->ops->io_loop_next(p->ctx), &io[1]);
	assert_ptr_equal(p->ops->io_loop_next(p->ctx), &io[0]);
	platform_kvm_fini(&pk);
}

/* Loop names become thread names; the dispatch counter counts callbacks. */
static void cb_count(void *opaque, uint32_t events)
{
	(void)events;
	(*(unsigned *)opaque)++;
}

static void test_evloop_name_and_counter(void **state)
{
	(void)state;
	struct evloop el;
	unsigned calls = 0;
	int fds[2];
	assert_int_equal(evloop_init(&el), 0);
	evloop_set_name(&el, "io12345678901234567"); /* cut to 15 characters */
	assert_string_equal(el.name, "io1234567890123");
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(evloop_add(&el, fds[0], EPOLLIN, cb_count, &calls), 0);
	assert_int_equal(evloop_dispatched(&el), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(evloop_run_once(&el, 1000), 1);
	assert_int_equal(calls, 1);
	assert_int_equal(evloop_dispatched(&el), 1);
	assert_int_equal(evloop_del(&el, fds[0]), 0);
	evloop_fini(&el);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_evloop_name_and_counter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
