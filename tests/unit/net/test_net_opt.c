/* SPDX-License-Identifier: MIT */
/* --net option parsing, MAC helpers, passt's command line and the iovec helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "net/net.h"

static struct net_config cfg;
static char err[256];

static int parse(const char *s)
{
	err[0] = 0;
	return net_parse_opt(s, &cfg, err, sizeof(err));
}

static void test_modes(void **state)
{
	(void)state;
	assert_int_equal(parse("tap=vtap0"), 0);
	assert_int_equal(cfg.mode, NET_MODE_TAP);
	assert_string_equal(cfg.name, "vtap0");
	assert_false(cfg.has_mac);
	assert_false(cfg.vhost);

	assert_int_equal(parse("network=br-lan"), 0);
	assert_int_equal(cfg.mode, NET_MODE_BRIDGE);
	assert_string_equal(cfg.name, "br-lan");

	assert_int_equal(parse("user"), 0);
	assert_int_equal(cfg.mode, NET_MODE_USER);
	assert_string_equal(cfg.name, "");

	/* 15 characters is the longest Linux interface name. */
	assert_int_equal(parse("tap=abcdefghijklmno"), 0);
	assert_int_equal(parse("tap=abcdefghijklmnop"), -EINVAL);
	assert_non_null(strstr(err, "interface name"));
}

static void test_options(void **state)
{
	(void)state;
	assert_int_equal(parse("tap=t0,mac=0E:76:72:AB:cd:01,vhost=on"), 0);
	assert_true(cfg.has_mac);
	static const uint8_t want[6] = {0x0e, 0x76, 0x72, 0xab, 0xcd, 0x01};
	assert_memory_equal(cfg.mac, want, 6);
	assert_true(cfg.vhost);
	assert_int_equal(parse("network=br0,vhost=off"), 0);
	assert_false(cfg.vhost);
	assert_int_equal(cfg.queues, 1); /* the default */
	assert_int_equal(parse("tap=t0,queues=4"), 0);
	assert_int_equal(cfg.queues, 4);
	assert_int_equal(parse("network=br0,queues=16,vhost=off"), 0);
	assert_int_equal(cfg.queues, 16);
	assert_int_equal(parse("user,queues=1"), 0);
	assert_int_equal(cfg.queues, 1);
	assert_int_equal(parse("tap=t0,queues=2,vhost=on"), -EINVAL);
	assert_non_null(strstr(err, "vhost"));
	assert_int_equal(parse("user,queues=2"), -EINVAL);
	assert_non_null(strstr(err, "user networking"));
	assert_int_equal(parse("tap=t0,queues=17"), -EINVAL);
	assert_non_null(strstr(err, "1 to 16"));

	assert_int_equal(parse("user,hostfwd=tcp:2222-:22,hostfwd=udp:127.0.0.1:5353-:53,"
			       "hostfwd=tcp::8080-:80"),
			 0);
	assert_int_equal(cfg.nr_hostfwd, 3);
	assert_int_equal(cfg.hostfwd[0].proto, NET_PROTO_TCP);
	assert_int_equal(cfg.hostfwd[0].host_port, 2222);
	assert_int_equal(cfg.hostfwd[0].guest_port, 22);
	assert_string_equal(cfg.hostfwd[0].host_addr, "");
	assert_int_equal(cfg.hostfwd[1].proto, NET_PROTO_UDP);
	assert_string_equal(cfg.hostfwd[1].host_addr, "127.0.0.1");
	assert_int_equal(cfg.hostfwd[1].host_port, 5353);
	assert_int_equal(cfg.hostfwd[1].guest_port, 53);
	assert_int_equal(cfg.hostfwd[2].host_port, 8080);
	assert_string_equal(cfg.hostfwd[2].host_addr, "");
}

static void test_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "tap",
	    "tap=",
	    "network",
	    "user=x",
	    "bogus=1",
	    "tap=a/b",
	    "tap=a:b",
	    "tap=a b",
	    "tap=.",
	    "tap=..",
	    /* MACs: multicast, zero, malformed */
	    "tap=t,mac=01:00:5e:00:00:01",
	    "tap=t,mac=00:00:00:00:00:00",
	    "tap=t,mac=0e:76:72:00:00",
	    "tap=t,mac=0e:76:72:00:00:0g",
	    "tap=t,mac=0e-76-72-00-00-01",
	    "tap=t,mac=0e:76:72:00:00:011",
	    "tap=t,mac",
	    "tap=t,mac=",
	    /* hostfwd: only for user; ports; syntax */
	    "tap=t,hostfwd=tcp:1-:2",
	    "user,hostfwd=tcp:0-:22",
	    "user,hostfwd=tcp:65536-:22",
	    "user,hostfwd=tcp:22-:0",
	    "user,hostfwd=tcp:22:22",
	    "user,hostfwd=sctp:1-:2",
	    "user,hostfwd=tcp:1-10.0.2.15:2",
	    "user,hostfwd=tcp:1.2.3:1-:2",
	    "user,hostfwd=tcp:-1-:2",
	    "user,hostfwd=tcp:2222-:22,hostfwd=tcp:2222-:23",
	    "user,hostfwd=tcp",
	    "user,hostfwd=",
	    /* vhost: only tap/network, on/off */
	    "user,vhost=on",
	    "tap=t,vhost=yes",
	    /* queues: 1..16, tap/network only */
	    "tap=t,queues=0",
	    "tap=t,queues=",
	    "tap=t,queues=-1",
	    "tap=t,queues=1x",
	    "tap=t,queues=99999999999999999999",
	    "tap=t,unknown=1",
	    "user,mac=0e:00:00:00:00:01,x",
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse(bad[i]);
		if (r != -EINVAL)
			fail_msg("'%s' accepted (r=%d)", bad[i], r);
		if (!err[0])
			fail_msg("'%s': no error message", bad[i]);
	}
	/* Too many forwards. */
	char buf[600] = "user";
	for (unsigned i = 0; i <= NET_MAX_HOSTFWD; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ",hostfwd=tcp:%u-:%u",
			 1000 + i, i + 1);
	assert_int_equal(parse(buf), -EINVAL);
	/* A udp and a tcp forward may share the host port. */
	assert_int_equal(parse("user,hostfwd=tcp:53-:53,hostfwd=udp:53-:53"), 0);
}

static void test_mac(void **state)
{
	(void)state;
	uint8_t a[6], b[6], c[6];
	char s[18];
	net_mac_default(a, "vm-one", 0);
	net_mac_default(b, "vm-one", 0);
	net_mac_default(c, "vm-one", 1);
	assert_memory_equal(a, b, 6); /* stable */
	assert_memory_not_equal(a, c, 6);
	assert_int_equal(a[0], NET_MAC_PREFIX0);
	assert_int_equal(a[1], NET_MAC_PREFIX1);
	assert_int_equal(a[2], NET_MAC_PREFIX2);
	assert_true(net_mac_valid(a));
	assert_true(a[0] & 2);	/* locally administered */
	assert_false(a[0] & 1); /* unicast */
	net_mac_default(b, "vm-two", 0);
	assert_memory_not_equal(a, b, 6);
	net_mac_default(b, NULL, 0);
	assert_true(net_mac_valid(b));

	net_mac_format(a, s);
	assert_int_equal(strlen(s), 17);
	assert_int_equal(net_mac_parse(s, b), 0);
	assert_memory_equal(a, b, 6);
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, zero[6];
	assert_false(net_mac_valid(bcast));
	assert_false(net_mac_valid(zero));
}

static void test_passt_argv(void **state)
{
	(void)state;
	char *argv[48], buf[1024];
	assert_int_equal(parse("user,hostfwd=tcp:2222-:22,hostfwd=udp:127.0.0.1:5353-:53"), 0);
	int n = net_passt_argv(&cfg, 3, "/usr/bin/passt", false, argv, 48, buf, sizeof(buf));
	assert_int_equal(n, 11);
	static const char *const want[] = {
	    "/usr/bin/passt",	"-f", "-q", "-F", "3", "-m", "1500", "-t", "2222:22", "-u",
	    "127.0.0.1/5353:53"};
	for (int i = 0; i < n; i++)
		assert_string_equal(argv[i], want[i]);
	assert_null(argv[n]);
	n = net_passt_argv(&cfg, 3, "/usr/bin/passt", true, argv, 48, buf, sizeof(buf));
	assert_int_equal(n, 13);
	assert_string_equal(argv[7], "--runas");
	assert_string_equal(argv[8], "nobody");
	assert_string_equal(argv[9], "-t");
	/* Too small a vector or buffer: refused, never overflowed. */
	assert_int_equal(
	    net_passt_argv(&cfg, 3, "/usr/bin/passt", false, argv, 5, buf, sizeof(buf)), -ENOSPC);
	assert_int_equal(net_passt_argv(&cfg, 3, "/usr/bin/passt", false, argv, 48, buf, 20),
			 -ENOSPC);
}

static void test_iov(void **state)
{
	(void)state;
	uint8_t a[3] = {1, 2, 3}, b[1] = {4}, c[4] = {5, 6, 7, 8}, out[8];
	struct iovec iov[3] = {{a, 3}, {b, 1}, {c, 4}}, tail[3];
	size_t bytes;

	assert_int_equal(net_iov_len(iov, 3), 8);
	assert_int_equal(net_iov_read(iov, 3, 2, out, 4), 4);
	assert_memory_equal(out, ((uint8_t[]){3, 4, 5, 6}), 4);
	assert_int_equal(net_iov_read(iov, 3, 6, out, 10), 2); /* short at the end */
	assert_int_equal(net_iov_read(iov, 3, 9, out, 1), 0);
	assert_int_equal(net_iov_write(iov, 3, 3, ((uint8_t[]){9, 9}), 2), 2);
	assert_int_equal(b[0], 9);
	assert_int_equal(c[0], 9);

	unsigned k = net_iov_tail(iov, 3, 4, tail, 3, &bytes);
	assert_int_equal(k, 1);
	assert_int_equal(bytes, 4);
	assert_ptr_equal(tail[0].iov_base, c);
	k = net_iov_tail(iov, 3, 1, tail, 3, &bytes);
	assert_int_equal(k, 3);
	assert_int_equal(bytes, 7);
	assert_ptr_equal(tail[0].iov_base, a + 1);
	k = net_iov_tail(iov, 3, 1, tail, 2, &bytes); /* limited by max */
	assert_int_equal(k, 2);
	assert_int_equal(bytes, 3);
	k = net_iov_tail(iov, 3, 8, tail, 3, &bytes);
	assert_int_equal(k, 0);
	assert_int_equal(bytes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_modes),      cmocka_unit_test(test_options),
	    cmocka_unit_test(test_rejects),    cmocka_unit_test(test_mac),
	    cmocka_unit_test(test_passt_argv), cmocka_unit_test(test_iov),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
