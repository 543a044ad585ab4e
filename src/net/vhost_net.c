/* SPDX-License-Identifier: MIT */
/* vhost-net: the kernel serves virtio-net's data rings (see vhost_net.h). */
#include "net/vhost_net.h"
#include "common/log.h"
#include "memory/gmem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct vhost_net {
	int fd;
	uint64_t features;
	int kick[VHOST_NET_RINGS], call[VHOST_NET_RINGS];
	bool running;
};

int vhost_net_mem_table(const struct gmem *mem, struct vhost_net_region *out, unsigned max)
{
	if (mem->nr_regions > max)
		return -E2BIG;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		out[i].gpa = mem->regions[i].gpa;
		out[i].size = mem->regions[i].size;
		out[i].hva = (uint64_t)(uintptr_t)mem->regions[i].hva;
	}
	return (int)mem->nr_regions;
}

int vhost_net_open(struct vhost_net **out, const char *path)
{
	struct vhost_net *v;
	int r;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (unsigned i = 0; i < VHOST_NET_RINGS; i++)
		v->kick[i] = v->call[i] = -1;
	v->fd = open(path ? path : "/dev/vhost-net", O_RDWR | O_CLOEXEC);
	if (v->fd < 0) {
		r = -errno;
		goto fail;
	}
	if (ioctl(v->fd, VHOST_SET_OWNER) < 0 ||
	    ioctl(v->fd, VHOST_GET_FEATURES, &v->features) < 0) {
		r = -errno;
		goto fail;
	}
	for (unsigned i = 0; i < VHOST_NET_RINGS; i++) {
		v->kick[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		v->call[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (v->kick[i] < 0 || v->call[i] < 0) {
			r = -errno;
			goto fail;
		}
	}
	*out = v;
	return 0;
fail:
	vhost_net_close(v);
	return r;
}

void vhost_net_close(struct vhost_net *v)
{
	if (!v)
		return;
	vhost_net_stop(v);
	for (unsigned i = 0; i < VHOST_NET_RINGS; i++) {
		if (v->kick[i] >= 0)
			close(v->kick[i]);
		if (v->call[i] >= 0)
			close(v->call[i]);
	}
	if (v->fd >= 0)
		close(v->fd);
	free(v);
}

uint64_t vhost_net_features(const struct vhost_net *v)
{
	return v->features;
}

int vhost_net_kick_fd(const struct vhost_net *v, unsigned ring)
{
	return ring < VHOST_NET_RINGS ? v->kick[ring] : -1;
}

int vhost_net_call_fd(const struct vhost_net *v, unsigned ring)
{
	return ring < VHOST_NET_RINGS ? v->call[ring] : -1;
}

void vhost_net_kick(struct vhost_net *v, unsigned ring)
{
	uint64_t one = 1;
	if (ring < VHOST_NET_RINGS && write(v->kick[ring], &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		vlog_rl("vhost-net: kick: %s", strerror(errno));
}

bool vhost_net_running(const struct vhost_net *v)
{
	return v && v->running;
}

static int vhost_set_backend(struct vhost_net *v, unsigned ring, int fd)
{
	struct vhost_vring_file f = {.index = ring, .fd = fd};
	return ioctl(v->fd, VHOST_NET_SET_BACKEND, &f) < 0 ? -errno : 0;
}

static int vhost_set_mem(struct vhost_net *v, const struct gmem *mem)
{
	struct vhost_net_region regs[VHOST_NET_MAX_REGIONS];
	int n = vhost_net_mem_table(mem, regs, VHOST_NET_MAX_REGIONS);
	if (n < 0)
		return n;
	struct vhost_memory *m = calloc(1, sizeof(*m) + (size_t)n * sizeof(m->regions[0]));
	if (!m)
		return -ENOMEM;
	m->nregions = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		m->regions[i].guest_phys_addr = regs[i].gpa;
		m->regions[i].memory_size = regs[i].size;
		m->regions[i].userspace_addr = regs[i].hva;
	}
	int r = ioctl(v->fd, VHOST_SET_MEM_TABLE, m) < 0 ? -errno : 0;
	free(m);
	return r;
}

static int vhost_set_ring(struct vhost_net *v, unsigned i, const struct vhost_net_ring *ring)
{
	struct vhost_vring_state num = {.index = i, .num = ring->size};
	struct vhost_vring_state base = {.index = i, .num = ring->base};
	struct vhost_vring_addr addr = {
	    .index = i,
	    .desc_user_addr = (uint64_t)(uintptr_t)ring->desc,
	    .avail_user_addr = (uint64_t)(uintptr_t)ring->avail,
	    .used_user_addr = (uint64_t)(uintptr_t)ring->used,
	};
	struct vhost_vring_file kick = {.index = i, .fd = v->kick[i]};
	struct vhost_vring_file call = {.index = i, .fd = v->call[i]};
	if (ioctl(v->fd, VHOST_SET_VRING_NUM, &num) < 0 ||
	    ioctl(v->fd, VHOST_SET_VRING_BASE, &base) < 0 ||
	    ioctl(v->fd, VHOST_SET_VRING_ADDR, &addr) < 0 ||
	    ioctl(v->fd, VHOST_SET_VRING_KICK, &kick) < 0 ||
	    ioctl(v->fd, VHOST_SET_VRING_CALL, &call) < 0)
		return -errno;
	return 0;
}

int vhost_net_start(struct vhost_net *v, const struct gmem *mem, uint64_t features,
		    const struct vhost_net_ring rings[VHOST_NET_RINGS], int tap_fd)
{
	unsigned attached = 0;
	int r;

	if (v->running)
		return -EBUSY;
	if (features & ~v->features)
		return -EOPNOTSUPP;
	if (ioctl(v->fd, VHOST_SET_FEATURES, &features) < 0)
		return -errno;
	r = vhost_set_mem(v, mem);
	for (unsigned i = 0; !r && i < VHOST_NET_RINGS; i++)
		r = vhost_set_ring(v, i, &rings[i]);
	while (!r && attached < VHOST_NET_RINGS) {
		r = vhost_set_backend(v, attached, tap_fd);
		if (!r)
			attached++;
	}
	if (r) {
		for (unsigned i = 0; i < attached; i++)
			if (vhost_set_backend(v, i, -1) < 0)
				vwarn("vhost-net: cannot detach ring %u", i);
		return r;
	}
	v->running = true;
	return 0;
}

void vhost_net_stop(struct vhost_net *v)
{
	if (!v || !v->running)
		return;
	for (unsigned i = 0; i < VHOST_NET_RINGS; i++) {
		struct vhost_vring_state st = {.index = i};
		if (vhost_set_backend(v, i, -1) < 0)
			vwarn("vhost-net: cannot detach ring %u: %s", i, strerror(errno));
		/* Stops the ring: the kernel no longer touches guest memory for it. */
		if (ioctl(v->fd, VHOST_GET_VRING_BASE, &st) < 0)
			vdebug("vhost-net: GET_VRING_BASE %u: %s", i, strerror(errno));
	}
	v->running = false;
}
