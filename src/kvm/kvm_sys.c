/* SPDX-License-Identifier: MIT */
#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

static const struct {
	long cap;
	const char *name;
} required_caps[] = {
	{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
	{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	{KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
	{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	{KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
	{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
	{KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
	{KVM_CAP_PIT2, "KVM_CAP_PIT2"},
	{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

int kvm_sys_check_ext(const struct kvm_sys *s, long cap)
{
	int r = ioctl(s->fd, KVM_CHECK_EXTENSION, cap);
	return r < 0 ? 0 : r;
}

int kvm_sys_open(struct kvm_sys *s, const char *path, const char **missing)
{
	int r;
	memset(s, 0, sizeof(*s));
	*missing = NULL;
	s->fd = open(path, O_RDWR | O_CLOEXEC);
	if (s->fd < 0)
		return -errno;
	r = ioctl(s->fd, KVM_GET_API_VERSION, 0);
	if (r < 0) {
		/* Not a KVM device at all (a regular file, /dev/null, ...). */
		r = -ENODEV;
		goto fail;
	}
	if (r != KVM_API_VERSION) {
		*missing = "KVM API version 12";
		r = -ENOTSUP;
		goto fail;
	}
	for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++) {
		if (kvm_sys_check_ext(s, required_caps[i].cap) <= 0) {
			*missing = required_caps[i].name;
			r = -ENOTSUP;
			goto fail;
		}
	}
	s->vcpu_mmap_size = ioctl(s->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (s->vcpu_mmap_size <= 0) {
		r = -errno;
		goto fail;
	}
	int mx = kvm_sys_check_ext(s, KVM_CAP_MAX_VCPUS);
	int nr = kvm_sys_check_ext(s, KVM_CAP_NR_VCPUS);
	s->recommended_vcpus = nr > 0 ? (unsigned)nr : 4;
	s->max_vcpus = mx > 0 ? (unsigned)mx : s->recommended_vcpus;

	/* Supported CPUID: grow the buffer until KVM is satisfied. */
	for (unsigned n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c) {
			r = -ENOMEM;
			goto fail;
		}
		c->nent = n;
		if (ioctl(s->fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			s->supported_cpuid = c;
			break;
		}
		r = -errno;
		free(c);
		if (r != -E2BIG)
			goto fail;
	}
	if (!s->supported_cpuid) {
		r = -E2BIG;
		goto fail;
	}
	return 0;
fail:
	close(s->fd);
	s->fd = -1;
	return r;
}

void kvm_sys_close(struct kvm_sys *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->supported_cpuid);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}
