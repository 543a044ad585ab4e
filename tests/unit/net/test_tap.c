/* SPDX-License-Identifier: MIT */
/*
 * The TAP and bridged-TAP backends against the real kernel, inside a private network
 * namespace created by the test (unshare(CLONE_NEWNET)), so nothing on the host changes
 * and everything disappears with the process. Skipped without CAP_NET_ADMIN/CAP_SYS_ADMIN
 * or /dev/net/tun. An AF_PACKET socket on the TAP interface plays the host's side.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "net/net.h"
#include "net/vnet.h"

static struct net_backend *open_be(const char *opts, int expect, const char *errpart)
{
	struct net_config cfg;
	struct net_backend *be = NULL;
	char err[256] = "";
	assert_int_equal(net_parse_opt(opts, &cfg, err, sizeof(err)), 0);
	int r = net_backend_open(&be, &cfg, err, sizeof(err));
	if (r != expect)
		fail_msg("open '%s': %d (%s), expected %d", opts, r, err, expect);
	if (errpart && !strstr(err, errpart))
		fail_msg("error '%s' lacks '%s'", err, errpart);
	return be;
}

static int packet_socket(const char *ifname)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
	assert_true(s >= 0);
	struct sockaddr_ll a = {.sll_family = AF_PACKET,
				.sll_protocol = htons(ETH_P_ALL),
				.sll_ifindex = (int)if_nametoindex(ifname)};
	assert_true(a.sll_ifindex > 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

static void frame(uint8_t *f, size_t len, uint8_t seed)
{
	static const uint8_t dst[6] = {0x0e, 0x76, 0x72, 0, 0, 1}, src[6] = {0x02, 0, 0, 0, 0, 2};
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88; /* local experimental ethertype: the stack ignores it */
	f[13] = 0xb5;
	for (size_t i = 14; i < len; i++)
		f[i] = (uint8_t)(i + seed);
}

static bool ours(const uint8_t *f, ssize_t len)
{
	return len >= 14 && f[12] == 0x88 && f[13] == 0xb5;
}

/* Next frame of ours on the packet socket (the kernel may send its own, e.g. IPv6). */
static ssize_t ps_recv(int ps, uint8_t *buf, size_t len)
{
	for (unsigned i = 0; i < 100; i++) {
		struct pollfd p = {.fd = ps, .events = POLLIN};
		assert_int_equal(poll(&p, 1, 2000), 1);
		ssize_t n = recv(ps, buf, len, 0);
		if (ours(buf, n))
			return n;
	}
	return -1;
}

/* Next frame of ours from the backend (header + frame). */
static ssize_t be_recv(struct net_backend *be, struct iovec *iov, unsigned n, uint8_t *base)
{
	for (unsigned i = 0; i < 100; i++) {
		ssize_t r = net_backend_recv(be, iov, n);
		if (r == -EAGAIN) {
			struct pollfd p = {.fd = be->fd, .events = POLLIN};
			assert_int_equal(poll(&p, 1, 2000), 1);
			continue;
		}
		if (r > 12 && ours(base + 12, r - 12))
			return r;
	}
	return -1;
}

static void test_tap_data(void **state)
{
	(void)state;
	static uint8_t out[1514], in[70000];
	struct net_backend *be = open_be("tap=vt0", 0, NULL);
	assert_string_equal(be->ifname, "vt0");
	assert_true(be->vnet_hdr);
	assert_true(be->offload_caps & NET_OFFLOAD_CSUM);
	assert_true(be->offload_caps & NET_OFFLOAD_TSO4);
	assert_int_equal(be->mtu, 1500);
	int ps = packet_socket("vt0");

	/* Guest -> host: the frame appears on vt0 without the virtio-net header. */
	struct virtio_net_hdr_v1 h = {0};
	frame(out, sizeof(out), 1);
	struct iovec iov[3] = {{&h, 12}, {out, 100}, {out + 100, sizeof(out) - 100}};
	assert_int_equal(net_backend_send(be, iov, 3), 0);
	assert_int_equal(ps_recv(ps, in, sizeof(in)), sizeof(out));
	assert_memory_equal(in, out, sizeof(out));

	/* A header asking for GSO that the frame cannot satisfy is refused by the kernel. */
	struct virtio_net_hdr_v1 bad = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
					.gso_type = 1,
					.gso_size = 100,
					.csum_start = 2000,
					.csum_offset = 16};
	iov[0].iov_base = &bad;
	assert_true(net_backend_send(be, iov, 3) < 0);

	/* Host -> guest: header first, then the frame, in the iovecs we give. */
	struct iovec riov[2] = {{in, 5}, {in + 5, 2000}};
	frame(out, 200, 2);
	assert_int_equal(send(ps, out, 200, 0), 200);
	memset(in, 0x77, sizeof(in));
	assert_int_equal(be_recv(be, riov, 2, in), 212);
	struct virtio_net_hdr_v1 got;
	memcpy(&got, in, 12);
	assert_int_equal(got.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_memory_equal(in + 12, out, 200);

	/* Too small a buffer: the true length comes back, the excess is not written. */
	frame(out, 1000, 3);
	assert_int_equal(send(ps, out, 1000, 0), 1000);
	memset(in, 0x77, sizeof(in));
	riov[1].iov_len = 95; /* 100 bytes in all */
	assert_int_equal(be_recv(be, riov, 2, in), 1012);
	assert_memory_equal(in + 12, out, 88);
	assert_int_equal(in[100], 0x77);

	/* Offloads: what the guest accepted, nothing else. */
	assert_int_equal(net_backend_set_offload(be, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4), 0);
	assert_int_equal(net_backend_set_offload(be, 0), 0);
	assert_int_equal(net_backend_set_offload(be, NET_OFFLOAD_UFO), -EOPNOTSUPP);
	close(ps);
	net_backend_close(be);
	assert_int_equal(if_nametoindex("vt0"), 0); /* ours, not persistent: gone */
}

/* Receive one frame on queue q within a short wait; its length, or -EAGAIN. */
static ssize_t q_recv(struct net_backend *be, unsigned q, uint8_t *buf, size_t len)
{
	struct iovec iov = {buf, len};
	for (unsigned i = 0; i < 200; i++) {
		ssize_t r = net_backend_recv(net_backend_queue(be, q), &iov, 1);
		if (r != -EAGAIN)
			return r;
		usleep(1000);
	}
	return -EAGAIN;
}

static void test_tap_multiqueue(void **state)
{
	(void)state;
	static uint8_t out[200], in[70000];
	struct net_backend *be = open_be("tap=vmq0,queues=3", 0, NULL);
	assert_int_equal(net_backend_nr_queues(be), 3);
	assert_ptr_equal(net_backend_queue(be, 0), be);
	for (unsigned i = 1; i < 3; i++) {
		struct net_backend *q = net_backend_queue(be, i);
		assert_ptr_not_equal(q, be);
		assert_true(q->fd >= 0 && q->fd != be->fd);
		assert_true(q->vnet_hdr);
		assert_int_equal(q->offload_caps, be->offload_caps);
		assert_int_equal(q->mtu, be->mtu);
		assert_string_equal(q->ifname, "vmq0");
	}
	int ps = packet_socket("vmq0");

	/* Guest -> host through queue 2. */
	struct virtio_net_hdr_v1 h = {0};
	frame(out, sizeof(out), 5);
	struct iovec iov[2] = {{&h, 12}, {out, sizeof(out)}};
	assert_int_equal(net_backend_send(net_backend_queue(be, 2), iov, 2), 0);
	assert_int_equal(ps_recv(ps, in, sizeof(in)), sizeof(out));
	assert_memory_equal(in, out, sizeof(out));

	/* Host -> guest: with queues 0 and 1 detached, every frame reaches queue 2. */
	assert_int_equal(net_backend_queue_attach(net_backend_queue(be, 0), false), 0);
	assert_int_equal(net_backend_queue_attach(net_backend_queue(be, 1), false), 0);
	for (uint8_t seed = 0; seed < 4; seed++) {
		frame(out, sizeof(out), seed);
		out[30] = seed; /* different flows */
		assert_int_equal(send(ps, out, sizeof(out), 0), (ssize_t)sizeof(out));
		assert_int_equal(q_recv(be, 2, in, sizeof(in)), 12 + sizeof(out));
		assert_memory_equal(in + 12, out, sizeof(out));
	}
	assert_int_equal(q_recv(be, 0, in, sizeof(in)), -EAGAIN);
	/* Attached again, a queue receives (Linux still lets a detached queue write). */
	assert_int_equal(net_backend_queue_attach(net_backend_queue(be, 0), true), 0);
	assert_int_equal(net_backend_queue_attach(net_backend_queue(be, 2), false), 0);
	frame(out, sizeof(out), 9);
	assert_int_equal(send(ps, out, sizeof(out), 0), (ssize_t)sizeof(out));
	assert_int_equal(q_recv(be, 0, in, sizeof(in)), 12 + sizeof(out));
	/* Offloads act on the whole device, set through queue 0. */
	assert_int_equal(net_backend_set_offload(be, NET_OFFLOAD_CSUM), 0);
	assert_int_equal(net_backend_set_offload(be, 0), 0);

	/* queues=1 on a persistent multi_queue TAP attaches as its only queue. */
	assert_int_equal(ioctl(be->fd, TUNSETPERSIST, 1), 0);
	close(ps);
	net_backend_close(be);
	assert_true(if_nametoindex("vmq0") > 0);
	be = open_be("tap=vmq0", 0, NULL);
	assert_int_equal(net_backend_nr_queues(be), 1);
	assert_int_equal(ioctl(be->fd, TUNSETPERSIST, 0), 0);
	net_backend_close(be);
	assert_int_equal(if_nametoindex("vmq0"), 0);
	/* A TAP without multi_queue cannot take more queues. */
	be = open_be("tap=vt2", 0, NULL);
	assert_int_equal(ioctl(be->fd, TUNSETPERSIST, 1), 0);
	net_backend_close(be);
	assert_null(open_be("tap=vt2,queues=2", -EINVAL, "multi_queue"));
	be = open_be("tap=vt2", 0, NULL);
	assert_int_equal(ioctl(be->fd, TUNSETPERSIST, 0), 0);
	net_backend_close(be);
}

static bool has_master(const char *dev, const char *master)
{
	char cmd[128], line[512];
	bool found = false;
	snprintf(cmd, sizeof(cmd), "ip -o link show dev %s 2>/dev/null", dev);
	FILE *f = popen(cmd, "r");
	if (!f)
		return false;
	char want[64];
	snprintf(want, sizeof(want), "master %s ", master);
	while (fgets(line, sizeof(line), f))
		found |= strstr(line, want) != NULL;
	pclose(f);
	return found;
}

static void test_bridge(void **state)
{
	(void)state;
	if (system("ip link add vbr0 type bridge 2>/dev/null && ip link set vbr0 up") != 0)
		skip();
	struct net_backend *be = open_be("network=vbr0", 0, NULL);
	assert_int_equal(strncmp(be->ifname, "vireo", 5), 0);
	assert_true(has_master(be->ifname, "vbr0"));
	char name[IFNAMSIZ];
	snprintf(name, sizeof(name), "%s", be->ifname);
	net_backend_close(be);
	assert_int_equal(if_nametoindex(name), 0);

	/* Errors name the problem and leave no TAP behind. */
	assert_null(open_be("network=nosuchbr", -ENODEV, "no such bridge"));
	assert_null(open_be("network=lo", -EOPNOTSUPP, "not a Linux bridge"));
	assert_int_equal(system("ip -o link show | grep -q vireo"), 256);
	assert_int_equal(system("ip link del vbr0"), 0);
}

static void test_tap_errors(void **state)
{
	(void)state;
	/* lo exists and is no TAP. */
	assert_null(open_be("tap=lo", -EINVAL, "TUNSETIFF"));
	/* A TAP in use by another open file. */
	struct net_backend *be = open_be("tap=vt1", 0, NULL);
	assert_null(open_be("tap=vt1", -EBUSY, "in use"));
	net_backend_close(be);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tap_data),
	    cmocka_unit_test(test_tap_multiqueue),
	    cmocka_unit_test(test_bridge),
	    cmocka_unit_test(test_tap_errors),
	};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("SKIP: /dev/net/tun: %s\n", strerror(errno));
		return 77;
	}
	close(fd);
	if (unshare(CLONE_NEWNET) < 0) {
		printf("SKIP: cannot create a network namespace: %s\n", strerror(errno));
		return 77;
	}
	/* Quiet interfaces: no IPv6 autoconfiguration traffic on the TAPs (best effort). */
	for (unsigned i = 0; i < 2; i++) {
		int f = open(i ? "/proc/sys/net/ipv6/conf/all/disable_ipv6"
			       : "/proc/sys/net/ipv6/conf/default/disable_ipv6",
			     O_WRONLY | O_CLOEXEC);
		if (f >= 0) {
			if (write(f, "1", 1) != 1)
				printf("note: cannot disable IPv6\n");
			close(f);
		}
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
