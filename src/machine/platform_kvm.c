/* SPDX-License-Identifier: MIT */
#include "machine/platform_kvm.h"
#include "common/evloop.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

static int pk_irq_set_level(void *ctx, unsigned gsi, int level)
{
	struct platform_kvm *p = ctx;
	return kvm_vm_irq_line(p->vm, gsi, level);
}

static int pk_msi_alloc(void *ctx, unsigned *handle)
{
	struct platform_kvm *p = ctx;
	int r = -ENOSPC;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < PLATFORM_KVM_MAX_MSI; i++) {
		if (p->msi[i].used)
			continue;
		unsigned gsi;
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (efd < 0) {
			r = -errno;
			break;
		}
		r = kvm_vm_msi_alloc(p->vm, &gsi);
		if (r) {
			close(efd);
			break;
		}
		r = kvm_vm_irqfd(p->vm, efd, gsi, true);
		if (r) {
			kvm_vm_msi_free(p->vm, gsi);
			close(efd);
			break;
		}
		p->msi[i].used = true;
		p->msi[i].gsi = gsi;
		p->msi[i].efd = efd;
		*handle = i;
		break;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

static int pk_msi_update(void *ctx, unsigned h, uint64_t addr, uint32_t data)
{
	struct platform_kvm *p = ctx;
	if (h >= PLATFORM_KVM_MAX_MSI || !p->msi[h].used)
		return -EINVAL;
	return kvm_vm_msi_set(p->vm, p->msi[h].gsi, addr, data);
}

static int pk_msi_fire(void *ctx, unsigned h)
{
	struct platform_kvm *p = ctx;
	uint64_t one = 1;
	if (h >= PLATFORM_KVM_MAX_MSI || !p->msi[h].used)
		return -EINVAL;
	__atomic_add_fetch(&p->msi_fired, 1, __ATOMIC_RELAXED);
	return write(p->msi[h].efd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

static void pk_msi_release(struct platform_kvm *p, unsigned h)
{
	if (kvm_vm_irqfd(p->vm, p->msi[h].efd, p->msi[h].gsi, false))
		vdebug("irqfd deassign of GSI %u failed", p->msi[h].gsi);
	kvm_vm_msi_free(p->vm, p->msi[h].gsi);
	close(p->msi[h].efd);
	p->msi[h].used = false;
}

static void pk_msi_free(void *ctx, unsigned h)
{
	struct platform_kvm *p = ctx;
	pthread_mutex_lock(&p->lock);
	if (h < PLATFORM_KVM_MAX_MSI && p->msi[h].used)
		pk_msi_release(p, h);
	pthread_mutex_unlock(&p->lock);
}

static int pk_ioeventfd_add(void *ctx, uint64_t gpa, unsigned len, int efd)
{
	struct platform_kvm *p = ctx;
	return kvm_vm_ioeventfd(p->vm, false, gpa, len, efd, true);
}

static int pk_ioeventfd_del(void *ctx, uint64_t gpa, unsigned len, int efd)
{
	struct platform_kvm *p = ctx;
	return kvm_vm_ioeventfd(p->vm, false, gpa, len, efd, false);
}

/* Machine-building thread only (devices ask at creation). */
static struct evloop *pk_io_loop_next(void *ctx)
{
	struct platform_kvm *p = ctx;
	if (!p->nr_io_loops)
		return NULL;
	return &p->io_loops[p->io_next++ % p->nr_io_loops];
}

static const struct platform_ops platform_kvm_ops = {
	.irq_set_level = pk_irq_set_level,
	.msi_alloc = pk_msi_alloc,
	.msi_update = pk_msi_update,
	.msi_fire = pk_msi_fire,
	.msi_free = pk_msi_free,
	.ioeventfd_add = pk_ioeventfd_add,
	.ioeventfd_del = pk_ioeventfd_del,
	.io_loop_next = pk_io_loop_next,
};

int platform_kvm_init(struct platform_kvm *p, struct kvm_vm *vm, struct gmem *mem,
		      struct evloop *loop, struct bus *mmio, struct bus *pio)
{
	memset(p, 0, sizeof(*p));
	p->vm = vm;
	p->plat = (struct platform){.ops = &platform_kvm_ops,
				    .ctx = p,
				    .mem = mem,
				    .loop = loop,
				    .mmio = mmio,
				    .pio = pio};
	return -pthread_mutex_init(&p->lock, NULL);
}

void platform_kvm_set_io_loops(struct platform_kvm *p, struct evloop *loops, unsigned n)
{
	p->io_loops = loops;
	p->nr_io_loops = n;
	p->io_next = 0;
}

void platform_kvm_fini(struct platform_kvm *p)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < PLATFORM_KVM_MAX_MSI; i++)
		if (p->msi[i].used)
			pk_msi_release(p, i);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_destroy(&p->lock);
}
