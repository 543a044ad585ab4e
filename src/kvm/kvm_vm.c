/* SPDX-License-Identifier: MIT */
#include "kvm/kvm.h"
#include "memory/layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

/* Placed just below the IOAPIC; never RAM, never a BAR. */
#define KVM_TSS_ADDR 0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

int kvm_vm_create(struct kvm_vm *vm, struct kvm_sys *s)
{
	memset(vm, 0, sizeof(*vm));
	vm->sys = s;
	vm->fd = ioctl(s->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return -errno;
	vm->routing = calloc(1, sizeof(*vm->routing) +
				    KVM_MAX_GSI_ROUTES * sizeof(struct kvm_irq_routing_entry));
	if (!vm->routing) {
		close(vm->fd);
		vm->fd = -1;
		return -ENOMEM;
	}
	vm->next_msi_gsi = GSI_MSI_BASE;
	pthread_mutex_init(&vm->route_lock, NULL);
	return 0;
}

void kvm_vm_destroy(struct kvm_vm *vm)
{
	if (vm->fd >= 0)
		close(vm->fd);
	free(vm->routing);
	if (vm->sys)
		pthread_mutex_destroy(&vm->route_lock);
	memset(vm, 0, sizeof(*vm));
	vm->fd = -1;
}

int kvm_vm_set_memory(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva,
	};
	return ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static void route_add(struct kvm_irq_routing *t, uint32_t gsi, uint32_t chip, uint32_t pin)
{
	struct kvm_irq_routing_entry *e = &t->entries[t->nr++];
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

static int routing_commit(struct kvm_vm *vm)
{
	return ioctl(vm->fd, KVM_SET_GSI_ROUTING, vm->routing) < 0 ? -errno : 0;
}

int kvm_vm_create_irqchip(struct kvm_vm *vm)
{
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		return -errno;
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return -errno;
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return -errno;
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
		return -errno;

	/*
	 * Legacy routing: ISA IRQs 0-15 on the PICs (2 is the cascade), IOAPIC pins 0-23.
	 * The PIT raises GSI 0, which goes to IOAPIC pin 2 — the MADT carries the matching
	 * interrupt source override (IRQ 0 -> GSI 2).
	 */
	struct kvm_irq_routing *t = vm->routing;
	t->nr = 0;
	for (uint32_t i = 0; i < 16; i++) {
		if (i == 2)
			continue;
		route_add(t, i, i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, i % 8);
	}
	for (uint32_t i = 0; i < 24; i++) {
		if (i == 2)
			continue;
		route_add(t, i, KVM_IRQCHIP_IOAPIC, i == 0 ? 2 : i);
	}
	return routing_commit(vm);
}

int kvm_vm_irq_line(struct kvm_vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level l = {.irq = gsi, .level = level ? 1 : 0};
	return ioctl(vm->fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

int kvm_vm_ioeventfd(struct kvm_vm *vm, bool pio, uint64_t addr, unsigned len, int efd,
		     bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};
	return ioctl(vm->fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int kvm_vm_irqfd(struct kvm_vm *vm, int efd, unsigned gsi, bool assign)
{
	struct kvm_irqfd f = {.fd = (uint32_t)efd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};
	return ioctl(vm->fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

static struct kvm_irq_routing_entry *route_find(struct kvm_vm *vm, unsigned gsi)
{
	for (uint32_t i = 0; i < vm->routing->nr; i++)
		if (vm->routing->entries[i].gsi == gsi &&
		    vm->routing->entries[i].type == KVM_IRQ_ROUTING_MSI)
			return &vm->routing->entries[i];
	return NULL;
}

int kvm_vm_msi_alloc(struct kvm_vm *vm, unsigned *gsi)
{
	int r = -ENOSPC;
	pthread_mutex_lock(&vm->route_lock);
	if (vm->routing->nr >= KVM_MAX_GSI_ROUTES)
		goto out;
	for (unsigned g = GSI_MSI_BASE; g < KVM_MAX_GSI_ROUTES; g++) {
		if (vm->msi_used[g])
			continue;
		struct kvm_irq_routing_entry *e = &vm->routing->entries[vm->routing->nr++];
		memset(e, 0, sizeof(*e));
		e->gsi = g;
		e->type = KVM_IRQ_ROUTING_MSI;
		r = routing_commit(vm);
		if (r) {
			vm->routing->nr--;
			goto out;
		}
		vm->msi_used[g] = 1;
		*gsi = g;
		break;
	}
out:
	pthread_mutex_unlock(&vm->route_lock);
	return r;
}

int kvm_vm_msi_set(struct kvm_vm *vm, unsigned gsi, uint64_t addr, uint32_t data)
{
	int r = -ENOENT;
	pthread_mutex_lock(&vm->route_lock);
	struct kvm_irq_routing_entry *e = route_find(vm, gsi);
	if (e) {
		e->u.msi.address_lo = (uint32_t)addr;
		e->u.msi.address_hi = (uint32_t)(addr >> 32);
		e->u.msi.data = data;
		r = routing_commit(vm);
	}
	pthread_mutex_unlock(&vm->route_lock);
	return r;
}

void kvm_vm_msi_free(struct kvm_vm *vm, unsigned gsi)
{
	pthread_mutex_lock(&vm->route_lock);
	struct kvm_irq_routing_entry *e = route_find(vm, gsi);
	if (e) {
		*e = vm->routing->entries[--vm->routing->nr];
		vm->msi_used[gsi] = 0;
		/* On failure the stale route is harmless: its irqfd is gone. */
		(void)!routing_commit(vm);
	}
	pthread_mutex_unlock(&vm->route_lock);
}

int kvm_vm_get_clock(struct kvm_vm *vm, struct kvm_clock_data *c)
{
	return ioctl(vm->fd, KVM_GET_CLOCK, c) < 0 ? -errno : 0;
}
