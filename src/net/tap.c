/* SPDX-License-Identifier: MIT */
/*
 * TAP backend (tap=IFNAME) and bridged TAP (network=NAME). See net.h for the contract.
 * Frames are read straight into the guest's buffers (readv into the iovecs the device
 * gives us); a host-side overflow buffer after them tells the true length of a frame that
 * did not fit, so the device can drop it instead of delivering a truncated frame.
 *
 * queues=N > 1: the TAP is opened N times with IFF_MULTI_QUEUE. Queue 0 is the backend
 * the caller gets; queues 1..N-1 are further struct tap objects it owns (own fd and
 * overflow buffer, so each queue pair runs without sharing anything with the others).
 * TUNSETVNETHDRSZ and TUNSETOFFLOAD act on the whole device, so they go through queue 0.
 */
#include "net/net.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define TAP_SCRATCH (NET_MAX_FRAME + NET_VNET_HDR_LEN + 2048)
#define TAP_OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)

struct tap {
	struct net_backend be;
	uint8_t *scratch;			    /* overflow of frames larger than the buffers */
	struct iovec iov[NET_RECV_MAX_IOV + 1];	    /* caller's iovecs + scratch */
	struct net_backend *queues[NET_MAX_QUEUES]; /* queue 0 only: every queue, [0] = self */
};

PRINTF_FMT(4, 5) static int tap_err(int r, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

static int tap_send(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	for (;;) {
		ssize_t w = writev(be->fd, iov, (int)n);
		if (w >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static ssize_t tap_recv(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	struct tap *t = container_of(be, struct tap, be);
	if (n > NET_RECV_MAX_IOV)
		return -EINVAL;
	memcpy(t->iov, iov, n * sizeof(*iov));
	t->iov[n].iov_base = t->scratch;
	t->iov[n].iov_len = TAP_SCRATCH;
	for (;;) {
		ssize_t r = readv(be->fd, t->iov, (int)n + 1);
		if (r > 0)
			return r;
		if (r == 0)
			return -EAGAIN;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static unsigned tap_tun_flags(unsigned offloads)
{
	unsigned f = 0;
	if (offloads & NET_OFFLOAD_CSUM)
		f |= TUN_F_CSUM;
	if (offloads & NET_OFFLOAD_TSO4)
		f |= TUN_F_TSO4;
	if (offloads & NET_OFFLOAD_TSO6)
		f |= TUN_F_TSO6;
	if (offloads & NET_OFFLOAD_ECN)
		f |= TUN_F_TSO_ECN;
	if (offloads & NET_OFFLOAD_UFO)
		f |= TUN_F_UFO;
	return f;
}

static int tap_set_offload(struct net_backend *be, unsigned offloads)
{
	if (offloads & ~be->offload_caps)
		return -EOPNOTSUPP;
	if (ioctl(be->fd, TUNSETOFFLOAD, (unsigned long)tap_tun_flags(offloads)) < 0)
		return -errno;
	return 0;
}

static int tap_queue_attach(struct net_backend *be, bool attach)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = attach ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(be->fd, TUNSETQUEUE, &ifr) < 0)
		return -errno;
	return 0;
}

static void tap_free_one(struct tap *t)
{
	if (t->be.fd >= 0)
		close(t->be.fd);
	free(t->scratch);
	free(t);
}

/* Queue 0 owns the other queues; close() is only called on it (net_backend_close). */
static void tap_close(struct net_backend *be)
{
	struct tap *t = container_of(be, struct tap, be);
	for (unsigned i = 1; i < NET_MAX_QUEUES; i++)
		if (t->queues[i])
			tap_free_one(container_of(t->queues[i], struct tap, be));
	tap_free_one(t);
}

static const struct net_backend_ops tap_ops = {
    .kind = "tap",
    .send = tap_send,
    .recv = tap_recv,
    .set_offload = tap_set_offload,
    .queue_attach = tap_queue_attach,
    .close = tap_close,
};

static const struct net_backend_ops bridge_ops = {
    .kind = "bridge",
    .send = tap_send,
    .recv = tap_recv,
    .set_offload = tap_set_offload,
    .queue_attach = tap_queue_attach,
    .close = tap_close,
};

/* Interface up (best effort: an unprivileged owner of a persistent TAP may not) and MTU. */
static void tap_link_setup(struct net_backend *be, int sock)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", be->ifname);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
			vdebug("%s: cannot bring the interface up: %s", be->desc, strerror(errno));
	}
	be->mtu = NET_DEFAULT_MTU;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", be->ifname);
	if (ioctl(sock, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu >= 68 && ifr.ifr_mtu <= 65535)
		be->mtu = (uint16_t)ifr.ifr_mtu;
}

static int tap_bridge_attach(struct net_backend *be, int sock, const char *bridge, char *err,
			     size_t errlen)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
	ifr.ifr_ifindex = (int)if_nametoindex(be->ifname);
	if (ifr.ifr_ifindex == 0)
		return tap_err(-errno, err, errlen, "network '%s': TAP %s vanished", bridge,
			       be->ifname);
	if (ioctl(sock, SIOCBRADDIF, &ifr) == 0)
		return 0;
	int r = -errno;
	if (r == -ENODEV)
		return tap_err(r, err, errlen, "network '%s': no such bridge", bridge);
	if (r == -EOPNOTSUPP || r == -EINVAL)
		return tap_err(r, err, errlen, "network '%s': not a Linux bridge", bridge);
	return tap_err(r, err, errlen, "network '%s': cannot add %s to the bridge: %s", bridge,
		       be->ifname, strerror(-r));
}

static struct tap *tap_alloc(const struct net_config *cfg)
{
	struct tap *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->be.fd = -1;
	t->be.ops = cfg->mode == NET_MODE_BRIDGE ? &bridge_ops : &tap_ops;
	t->be.vhost_wanted = cfg->vhost;
	t->scratch = malloc(TAP_SCRATCH);
	if (!t->scratch) {
		free(t);
		return NULL;
	}
	return t;
}

static int tap_open_fd(struct tap *t, const char *what, const char *cfgname, char *err,
		       size_t errlen)
{
	t->be.fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->be.fd < 0)
		return tap_err(-errno, err, errlen, "%s '%s': cannot open /dev/net/tun: %s", what,
			       cfgname, strerror(errno));
	return 0;
}

/* TUNSETIFF on t's open fd with name (a "%d" pattern lets the kernel pick). */
static int tap_attach_fd(struct tap *t, const char *what, const char *cfgname, const char *name,
			 short flags, char *err, size_t errlen)
{
	struct ifreq ifr;
	int r;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = flags;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(t->be.fd, TUNSETIFF, &ifr) == 0) {
		snprintf(t->be.ifname, sizeof(t->be.ifname), "%s", ifr.ifr_name);
		return 0;
	}
	r = -errno;
	if (r == -EPERM || r == -EACCES)
		return tap_err(r, err, errlen,
			       "%s '%s': permission denied (creating a TAP needs CAP_NET_ADMIN; "
			       "or use a persistent TAP you own: ip tuntap add NAME mode tap user "
			       "YOU vnet_hdr%s)",
			       what, cfgname, (flags & IFF_MULTI_QUEUE) ? " multi_queue" : "");
	if (r == -EBUSY)
		return tap_err(r, err, errlen, "%s '%s': the TAP is in use by another process",
			       what, cfgname);
	if (r == -EINVAL && (flags & IFF_MULTI_QUEUE))
		return tap_err(r, err, errlen,
			       "%s '%s': cannot attach a queue (queues= needs a TAP created with "
			       "multi_queue, and at most 256 queues)",
			       what, cfgname);
	return tap_err(r, err, errlen,
		       "%s '%s': TUNSETIFF: %s (a TUN or non-TAP device of that name?)", what,
		       cfgname, strerror(-r));
}

int net_tap_open(struct net_backend **out, const struct net_config *cfg, char *err, size_t errlen)
{
	bool bridge = cfg->mode == NET_MODE_BRIDGE;
	const char *what = bridge ? "network" : "tap";
	unsigned features = 0, nq = cfg->queues ? cfg->queues : 1;
	int hdrsz = NET_VNET_HDR_LEN, sock = -1, r;
	short flags = IFF_TAP | IFF_NO_PI;
	struct tap *t;

	*out = NULL;
	if (nq > NET_MAX_QUEUES)
		return tap_err(-EINVAL, err, errlen, "%s '%s': at most %u queues", what, cfg->name,
			       NET_MAX_QUEUES);
	t = tap_alloc(cfg);
	if (!t)
		return tap_err(-ENOMEM, err, errlen, "out of memory");
	r = tap_open_fd(t, what, cfg->name, err, errlen);
	if (r)
		goto fail;
	if (ioctl(t->be.fd, TUNGETFEATURES, &features) < 0)
		features = IFF_TAP | IFF_NO_PI;
	if (features & IFF_VNET_HDR)
		flags |= IFF_VNET_HDR;
	if (nq > 1) {
		if (!(features & IFF_MULTI_QUEUE)) {
			r = tap_err(-EOPNOTSUPP, err, errlen,
				    "%s '%s': the kernel has no multiqueue TAP (queues=%u)", what,
				    cfg->name, nq);
			goto fail;
		}
		flags |= IFF_MULTI_QUEUE;
	}
	r = tap_attach_fd(t, what, cfg->name, bridge ? "vireo%d" : cfg->name, flags, err, errlen);
	/* One queue on a persistent TAP created with multi_queue: attach as its only queue
	 * (if that fails too, the first error says more). */
	if (r == -EINVAL && nq == 1 && !bridge && (features & IFF_MULTI_QUEUE)) {
		char e2[8];
		if (tap_attach_fd(t, what, cfg->name, cfg->name, flags | IFF_MULTI_QUEUE, e2,
				  sizeof(e2)) == 0)
			r = 0;
	}
	if (r)
		goto fail;
	snprintf(t->be.desc, sizeof(t->be.desc), "%s %s", bridge ? "bridged tap" : "tap",
		 t->be.ifname);
	/* Further queues attach to the interface queue 0 created or found, by its name. */
	if (nq > 1) {
		t->queues[0] = &t->be;
		for (unsigned i = 1; i < nq; i++) {
			struct tap *q = tap_alloc(cfg);
			if (!q) {
				r = tap_err(-ENOMEM, err, errlen, "out of memory");
				goto fail;
			}
			t->queues[i] = &q->be;
			r = tap_open_fd(q, what, cfg->name, err, errlen);
			if (!r)
				r = tap_attach_fd(q, what, cfg->name, t->be.ifname, flags, err,
						  errlen);
			if (r)
				goto fail;
			snprintf(q->be.desc, sizeof(q->be.desc), "%.32s queue %u", t->be.desc, i);
		}
		t->be.nr_queues = nq;
		t->be.queues = t->queues;
	}
	if (flags & IFF_VNET_HDR) {
		if (ioctl(t->be.fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
			r = tap_err(-errno, err, errlen, "%s: TUNSETVNETHDRSZ: %s", t->be.desc,
				    strerror(errno));
			goto fail;
		}
		t->be.vnet_hdr = true;
		/* Which offloads the kernel accepts; the guest's choice is applied at activation.
		 */
		if (ioctl(t->be.fd, TUNSETOFFLOAD, (unsigned long)TAP_OFFLOADS) == 0)
			t->be.offload_caps = NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4 |
					     NET_OFFLOAD_TSO6 | NET_OFFLOAD_ECN;
		else if (ioctl(t->be.fd, TUNSETOFFLOAD, (unsigned long)TUN_F_CSUM) == 0)
			t->be.offload_caps = NET_OFFLOAD_CSUM;
		if (ioctl(t->be.fd, TUNSETOFFLOAD, 0UL) < 0)
			t->be.offload_caps = 0;
	} else {
		vwarn("%s: the kernel has no IFF_VNET_HDR: no offloads", t->be.desc);
	}
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		r = tap_err(-errno, err, errlen, "%s: socket: %s", t->be.desc, strerror(errno));
		goto fail;
	}
	if (bridge) {
		r = tap_bridge_attach(&t->be, sock, cfg->name, err, errlen);
		if (r)
			goto fail;
	}
	tap_link_setup(&t->be, sock);
	close(sock);
	/* The device-wide properties hold for every queue. */
	for (unsigned i = 1; i < nq; i++) {
		struct net_backend *q = t->queues[i];
		q->vnet_hdr = t->be.vnet_hdr;
		q->offload_caps = t->be.offload_caps;
		q->mtu = t->be.mtu;
	}
	vinfo("net: %s (vnet_hdr %s, offloads %#x, mtu %u, %u queue pair%s)", t->be.desc,
	      t->be.vnet_hdr ? "on" : "off", t->be.offload_caps, t->be.mtu, nq, nq > 1 ? "s" : "");
	*out = &t->be;
	return 0;
fail:
	if (sock >= 0)
		close(sock);
	tap_close(&t->be);
	return r;
}
