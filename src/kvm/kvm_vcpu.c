/* SPDX-License-Identifier: MIT */
#include "kvm/kvm.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

int kvm_vcpu_create(struct kvm_vcpu *v, struct kvm_vm *vm, unsigned id)
{
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return -errno;
	v->run_size = (size_t)vm->sys->vcpu_mmap_size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		int r = -errno;
		close(v->fd);
		v->fd = -1;
		v->run = NULL;
		return r;
	}
	return 0;
}

void kvm_vcpu_destroy(struct kvm_vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

#define VCPU_IOCTL(v, req, arg) (ioctl((v)->fd, (req), (arg)) < 0 ? -errno : 0)

int kvm_vcpu_run(struct kvm_vcpu *v)
{
	return VCPU_IOCTL(v, KVM_RUN, 0);
}

int kvm_vcpu_get_regs(struct kvm_vcpu *v, struct kvm_regs *r)
{
	return VCPU_IOCTL(v, KVM_GET_REGS, r);
}

int kvm_vcpu_set_regs(struct kvm_vcpu *v, const struct kvm_regs *r)
{
	return VCPU_IOCTL(v, KVM_SET_REGS, r);
}

int kvm_vcpu_get_sregs(struct kvm_vcpu *v, struct kvm_sregs *r)
{
	return VCPU_IOCTL(v, KVM_GET_SREGS, r);
}

int kvm_vcpu_set_sregs(struct kvm_vcpu *v, const struct kvm_sregs *r)
{
	return VCPU_IOCTL(v, KVM_SET_SREGS, r);
}

int kvm_vcpu_set_fpu(struct kvm_vcpu *v, const struct kvm_fpu *f)
{
	return VCPU_IOCTL(v, KVM_SET_FPU, f);
}

int kvm_vcpu_set_cpuid(struct kvm_vcpu *v, const struct kvm_cpuid2 *c)
{
	return VCPU_IOCTL(v, KVM_SET_CPUID2, c);
}

int kvm_vcpu_set_msrs(struct kvm_vcpu *v, const struct kvm_msrs *m)
{
	int r = ioctl(v->fd, KVM_SET_MSRS, m);
	if (r < 0)
		return -errno;
	/* KVM returns the number of MSRs set; a short count means one was refused. */
	return (uint32_t)r == m->nmsrs ? 0 : -EINVAL;
}

int kvm_vcpu_get_lapic(struct kvm_vcpu *v, struct kvm_lapic_state *l)
{
	return VCPU_IOCTL(v, KVM_GET_LAPIC, l);
}

int kvm_vcpu_set_lapic(struct kvm_vcpu *v, const struct kvm_lapic_state *l)
{
	return VCPU_IOCTL(v, KVM_SET_LAPIC, l);
}

int kvm_vcpu_set_mp_state(struct kvm_vcpu *v, uint32_t state)
{
	struct kvm_mp_state mp = {.mp_state = state};
	return VCPU_IOCTL(v, KVM_SET_MP_STATE, &mp);
}

int kvm_vcpu_translate(struct kvm_vcpu *v, uint64_t gva, uint64_t *gpa)
{
	struct kvm_translation t = {.linear_address = gva};
	int r = VCPU_IOCTL(v, KVM_TRANSLATE, &t);
	if (r)
		return r;
	if (!t.valid)
		return -EFAULT;
	*gpa = t.physical_address;
	return 0;
}

int kvm_vcpu_get_events(struct kvm_vcpu *v, struct kvm_vcpu_events *e)
{
	return VCPU_IOCTL(v, KVM_GET_VCPU_EVENTS, e);
}

int kvm_vcpu_set_events(struct kvm_vcpu *v, const struct kvm_vcpu_events *e)
{
	return VCPU_IOCTL(v, KVM_SET_VCPU_EVENTS, e);
}

void kvm_vcpu_kick_flag(struct kvm_vcpu *v, bool on)
{
	__atomic_store_n(&v->run->immediate_exit, on ? 1 : 0, __ATOMIC_RELEASE);
}
