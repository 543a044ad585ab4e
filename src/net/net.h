/* SPDX-License-Identifier: MIT */
/*
 * Network backends: where a virtual NIC's frames go on the host.
 *
 *   tap=IFNAME      a TAP device (created if absent, which needs CAP_NET_ADMIN; an existing
 *                   persistent TAP is attached to). IFF_TAP|IFF_NO_PI|IFF_VNET_HDR with a
 *                   12-byte header (virtio 1.x struct virtio_net_hdr_v1), non-blocking.
 *   network=NAME    a new TAP ("vireo%d", named by the kernel) enslaved to the existing
 *                   Linux bridge NAME with the SIOCBRADDIF ioctl (the TAP leaves the bridge
 *                   when it is closed). Same data path as tap=.
 *   user            user-mode NAT: a `passt` child process (found in PATH) connected by a
 *                   socketpair (passt -F FD; the qemu stream protocol: each frame preceded
 *                   by its length as a 32-bit big-endian integer). passt answers ARP, DHCP,
 *                   NDP and DNS for the guest and NATs TCP/UDP/ICMP through host sockets.
 *                   hostfwd=tcp:[ADDR:]HPORT-:GPORT becomes `-t [ADDR/]HPORT:GPORT`.
 *
 * Option syntax (net_parse_opt): MODE[,mac=MAC][,hostfwd=PROTO:[ADDR:]HPORT-:GPORT]...
 * [,vhost=on|off][,queues=N]; hostfwd only with `user`, vhost only with tap/network,
 * queues=N (1..NET_MAX_QUEUES, default 1) only with tap/network and not with vhost=on.
 *
 * Multiqueue (queues=N > 1): the TAP is opened N times with IFF_MULTI_QUEUE, one fd per
 * queue pair. Each fd is its own struct net_backend (net_backend_queue(be, i), i < N;
 * queue 0 is `be` itself) with the contract below; the kernel spreads received flows over
 * the attached queues. net_backend_queue_attach() attaches or detaches one queue
 * (TUNSETQUEUE): a detached queue gets no frames. Closing `be` closes every queue. An
 * existing persistent TAP must have been created with `multi_queue` for queues > 1.
 *
 * Default MAC (net_mac_default): 0e:76:72:xx:xx:xx. 0e has the locally administered bit set
 * and the multicast bit clear; 76:72 is "vr". The last three bytes are an FNV-1a hash of a
 * VM identifier and the NIC index, so a VM keeps its MAC across restarts; two VMs with the
 * same identifier collide, so callers should pass something unique (a VM name).
 *
 * Backend contract (struct net_backend_ops, called from one thread at a time; the
 * virtio-net device serialises them with its lock):
 * - `fd` is registered by the device in the I/O loop edge-triggered for EPOLLIN|EPOLLOUT.
 *   EPOLLIN: call recv() until it returns -EAGAIN (or remember to come back later: an edge
 *   is only reported for new data). EPOLLOUT: a send() that returned -EAGAIN may be retried.
 * - Frames carry a 12-byte virtio_net_hdr_v1 in front iff `vnet_hdr` is set, in both
 *   directions (the TAP passes it to and from the kernel unchanged). Otherwise they are
 *   plain Ethernet frames.
 * - send(): one frame; returns 0 when the frame was taken (possibly queued inside the
 *   backend), -EAGAIN when nothing was taken and the caller should retry after EPOLLOUT,
 *   another -errno when the frame was dropped (bad frame, backend gone).
 * - recv(): the next frame into iov[0..n) (n <= NET_RECV_MAX_IOV). Returns the frame's full
 *   length, which may exceed the iovecs' capacity: the excess is discarded and the caller
 *   must drop the frame. -EAGAIN when no frame is pending, another -errno on errors.
 * - set_offload(): NET_OFFLOAD_* the guest can receive (TUNSETOFFLOAD); only on backends
 *   whose `offload_caps` is non-zero.
 * - A backend lives as long as the VMM process, across guest reboots; the device borrows it.
 */
#ifndef VIREO_NET_NET_H
#define VIREO_NET_NET_H

#include "common/compiler.h"
#include <errno.h>
#include <net/if.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NET_MAX_HOSTFWD 16
#define NET_MAX_FRAME 65550u   /* largest frame without the virtio-net header (GSO) */
#define NET_VNET_HDR_LEN 12u   /* struct virtio_net_hdr_v1 */
#define NET_RECV_MAX_IOV 1023u /* iovecs a recv() may be given (UIO_MAXIOV - 1) */
#define NET_SEND_MAX_IOV 1022u /* iovecs a send() may be given */
#define NET_DEFAULT_MTU 1500u
#define NET_MAX_QUEUES 16u /* queue pairs of one NIC (queues=) */
#define NET_MAC_PREFIX0 0x0e
#define NET_MAC_PREFIX1 0x76
#define NET_MAC_PREFIX2 0x72

/* Offloads the guest can receive; map to TUN_F_*. */
#define NET_OFFLOAD_CSUM 0x01 /* partial checksums (VIRTIO_NET_F_GUEST_CSUM) */
#define NET_OFFLOAD_TSO4 0x02
#define NET_OFFLOAD_TSO6 0x04
#define NET_OFFLOAD_ECN 0x08
#define NET_OFFLOAD_UFO 0x10

enum net_mode { NET_MODE_NONE = 0, NET_MODE_TAP, NET_MODE_BRIDGE, NET_MODE_USER };
enum net_proto { NET_PROTO_TCP = 0, NET_PROTO_UDP };

struct net_hostfwd {
	enum net_proto proto;
	char host_addr[16]; /* dotted IPv4 to bind on the host, "" = all addresses */
	uint16_t host_port, guest_port;
};

struct net_config {
	enum net_mode mode;
	char name[IFNAMSIZ]; /* tap=: TAP name; network=: bridge name; "" for user */
	bool has_mac;
	uint8_t mac[6];
	bool vhost;	 /* ask for vhost-net (tap/network); falls back if unavailable */
	unsigned queues; /* queue pairs, 1..NET_MAX_QUEUES; 0 means 1 */
	unsigned nr_hostfwd;
	struct net_hostfwd hostfwd[NET_MAX_HOSTFWD];
};

struct net_backend;

struct net_backend_ops {
	const char *kind; /* "tap", "bridge", "user" */
	int (*send)(struct net_backend *be, const struct iovec *iov, unsigned n);
	ssize_t (*recv)(struct net_backend *be, const struct iovec *iov, unsigned n);
	/* Push out frames queued inside the backend: 0 done, -EAGAIN still pending. Optional. */
	int (*flush)(struct net_backend *be);
	int (*set_offload)(struct net_backend *be, unsigned offloads); /* optional */
	/* Multiqueue: attach (true) or detach this queue from the device. Optional. */
	int (*queue_attach)(struct net_backend *be, bool attach);
	void (*close)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	int fd;		       /* readiness, see above */
	bool vnet_hdr;	       /* frames carry the 12-byte virtio-net header */
	unsigned offload_caps; /* NET_OFFLOAD_* this backend can pass to the guest */
	uint16_t mtu;	       /* advertised to the guest (VIRTIO_NET_F_MTU) */
	char ifname[IFNAMSIZ]; /* TAP name for tap/network, "" otherwise */
	char desc[48];	       /* for log messages: "tap vireo0", "user (passt pid 123)" */
	bool vhost_wanted;     /* the config asked for vhost-net */
	/* Multiqueue: nr_queues fds, queues[0] == this backend. NULL/0 for one queue. */
	unsigned nr_queues;
	struct net_backend **queues;
};

/* Parse one --net argument. On error returns -EINVAL with a message in err. */
int net_parse_opt(const char *arg, struct net_config *cfg, char *err, size_t errlen) WUR;
/* "aa:bb:cc:dd:ee:ff" -> mac; -EINVAL unless exactly that form (hex digits, any case). */
int net_mac_parse(const char *s, uint8_t mac[6]) WUR;
/* Usable as a NIC address: unicast and not all zero. */
bool net_mac_valid(const uint8_t mac[6]);
/* Stable locally administered MAC for NIC `index` of the VM identified by vm_id. */
void net_mac_default(uint8_t mac[6], const char *vm_id, unsigned index);
/* buf must hold 18 bytes. */
void net_mac_format(const uint8_t mac[6], char buf[18]);
/* Linux interface name rules: 1..15 bytes, not "." or "..", no '/', ':' or whitespace. */
bool net_ifname_valid(const char *name);

/* Open the backend described by cfg. The caller owns it (net_backend_close). */
int net_backend_open(struct net_backend **out, const struct net_config *cfg, char *err,
		     size_t errlen) WUR;
void net_backend_close(struct net_backend *be);

static inline int net_backend_send(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	return be->ops->send(be, iov, n);
}
static inline ssize_t net_backend_recv(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	return be->ops->recv(be, iov, n);
}
static inline int net_backend_flush(struct net_backend *be)
{
	return be->ops->flush ? be->ops->flush(be) : 0;
}
/* Queue pairs this backend serves (1 unless a multiqueue TAP). */
static inline unsigned net_backend_nr_queues(const struct net_backend *be)
{
	return be->queues && be->nr_queues > 1 ? be->nr_queues : 1;
}
/* The backend of queue pair i < net_backend_nr_queues(be); queue 0 is be. */
static inline struct net_backend *net_backend_queue(struct net_backend *be, unsigned i)
{
	return i < net_backend_nr_queues(be) && be->queues ? be->queues[i] : be;
}
static inline int net_backend_queue_attach(struct net_backend *be, bool attach)
{
	if (!be->ops->queue_attach)
		return attach ? 0 : -EOPNOTSUPP;
	return be->ops->queue_attach(be, attach);
}
static inline int net_backend_set_offload(struct net_backend *be, unsigned offloads)
{
	if (!be->ops->set_offload)
		return offloads ? -EOPNOTSUPP : 0;
	return be->ops->set_offload(be, offloads);
}

/* Backends (tap.c, passt.c); net_backend_open picks one. */
int net_tap_open(struct net_backend **out, const struct net_config *cfg, char *err,
		 size_t errlen) WUR;
int net_passt_open(struct net_backend **out, const struct net_config *cfg, char *err,
		   size_t errlen) WUR;
/* Build passt's argument vector for cfg into argv (NULL-terminated, at most max entries,
 * strings in buf); as_root adds --runas nobody. Returns the argument count or -ENOSPC.
 * Exposed for unit tests. */
int net_passt_argv(const struct net_config *cfg, int fd, const char *path, bool as_root,
		   char **argv, unsigned max, char *buf, size_t buflen) WUR;

/* iovec helpers. */
size_t net_iov_len(const struct iovec *iov, unsigned n);
/* Copy up to len bytes starting at byte off of iov into dst; returns bytes copied. */
size_t net_iov_read(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len);
/* Copy len bytes of src into iov at byte off; returns bytes copied. */
size_t net_iov_write(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len);
/* dst = iov without its first skip bytes (at most max entries); returns entries, and the
 * number of bytes covered in *bytes. */
unsigned net_iov_tail(const struct iovec *iov, unsigned n, size_t skip, struct iovec *dst,
		      unsigned max, size_t *bytes);

#endif
