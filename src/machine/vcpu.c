/* SPDX-License-Identifier: MIT */
#include "machine/vcpu.h"
#include "machine/machine_priv.h"
#include "common/log.h"
#include "kvm/emulate_vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VCPU_KICK_SIGNAL SIGUSR1

/* MSR numbers (Intel SDM vol. 4). */
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_IA32_MISC_ENABLE_FAST_STRING 0x1
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

/* LAPIC register offsets and LVT delivery modes. */
#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_signals_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return -EINTR */
	sigemptyset(&sa.sa_mask);
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

static void seg_to_kvm(struct kvm_segment *k, const struct boot_segment *s)
{
	k->base = s->base;
	k->limit = s->limit;
	k->selector = s->selector;
	k->type = s->type;
	k->present = s->present;
	k->dpl = s->dpl;
	k->db = s->db;
	k->s = s->s;
	k->l = s->l;
	k->g = s->g;
	k->avl = 0;
	k->unusable = 0;
}

static int vcpu_setup_boot_regs(struct vcpu *v, const struct boot_entry *e)
{
	struct kvm_sregs sr;
	int r = kvm_vcpu_get_sregs(&v->kvm, &sr);
	if (r)
		return r;
	seg_to_kvm(&sr.cs, &e->cs);
	seg_to_kvm(&sr.ds, &e->ds);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	seg_to_kvm(&sr.tr, &e->tr);
	sr.ldt.unusable = 1;
	sr.gdt.base = e->gdt_base;
	sr.gdt.limit = e->gdt_limit;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr0 = e->cr0;
	sr.cr3 = e->cr3;
	sr.cr4 = e->cr4;
	sr.efer = e->efer;
	r = kvm_vcpu_set_sregs(&v->kvm, &sr);
	if (r)
		return r;
	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = e->rip;
	regs.rsp = e->rsp;
	regs.rsi = e->rsi;
	regs.rbx = e->rbx;
	regs.rflags = e->rflags ? e->rflags : 2;
	return kvm_vcpu_set_regs(&v->kvm, &regs);
}

static int vcpu_setup_msrs(struct vcpu *v)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} init[] = {
		{MSR_IA32_SYSENTER_CS, 0},
		{MSR_IA32_SYSENTER_ESP, 0},
		{MSR_IA32_SYSENTER_EIP, 0},
		{MSR_STAR, 0},
		{MSR_CSTAR, 0},
		{MSR_KERNEL_GS_BASE, 0},
		{MSR_SYSCALL_MASK, 0},
		{MSR_LSTAR, 0},
		{MSR_IA32_TSC, 0},
		{MSR_IA32_MISC_ENABLE, MSR_IA32_MISC_ENABLE_FAST_STRING},
		/* MTRRs enabled, default type write-back: Linux then maps RAM WB. */
		{MSR_MTRR_DEF_TYPE, (1u << 11) | 6},
	};
	/* struct kvm_msrs ends in a flexible array: build it in an aligned buffer. */
	union {
		struct kvm_msrs hdr;
		uint8_t raw[sizeof(struct kvm_msrs) + ARRAY_SIZE(init) * sizeof(struct kvm_msr_entry)];
	} buf;
	memset(&buf, 0, sizeof(buf));
	buf.hdr.nmsrs = ARRAY_SIZE(init);
	for (size_t i = 0; i < ARRAY_SIZE(init); i++) {
		buf.hdr.entries[i].index = init[i].index;
		buf.hdr.entries[i].data = init[i].value;
	}
	return kvm_vcpu_set_msrs(&v->kvm, &buf.hdr);
}

static int vcpu_setup_fpu(struct vcpu *v)
{
	struct kvm_fpu fpu;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	return kvm_vcpu_set_fpu(&v->kvm, &fpu);
}

static uint32_t lapic_reg_get(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;
	memcpy(&v, &l->regs[off], 4);
	return v;
}

static void lapic_reg_set(struct kvm_lapic_state *l, unsigned off, uint32_t v)
{
	memcpy(&l->regs[off], &v, 4);
}

/* LINT0 = ExtINT (the 8259 PIC), LINT1 = NMI, as a PC's firmware leaves them. */
static int vcpu_setup_lapic(struct vcpu *v)
{
	struct kvm_lapic_state l;
	int r = kvm_vcpu_get_lapic(&v->kvm, &l);
	if (r)
		return r;
	uint32_t lvt0 = lapic_reg_get(&l, APIC_LVT0) & ~0x700u;
	uint32_t lvt1 = lapic_reg_get(&l, APIC_LVT1) & ~0x700u;
	lapic_reg_set(&l, APIC_LVT0, lvt0 | (APIC_MODE_EXTINT << 8));
	lapic_reg_set(&l, APIC_LVT1, lvt1 | (APIC_MODE_NMI << 8));
	return kvm_vcpu_set_lapic(&v->kvm, &l);
}

int vcpu_setup(struct vcpu *v, const struct kvm_cpuid2 *cpuid, const struct boot_entry *e)
{
	int r = kvm_vcpu_set_cpuid(&v->kvm, cpuid);
	if (!r)
		r = vcpu_setup_msrs(v);
	if (!r)
		r = vcpu_setup_fpu(v);
	if (!r)
		r = vcpu_setup_lapic(v);
	if (!r && v->kvm.id == 0)
		r = vcpu_setup_boot_regs(v, e);
	return r;
}

static void seg_dump(const char *n, const struct kvm_segment *s)
{
	verr("  %-3s sel=%04x base=%016llx limit=%08x type=%x s=%u dpl=%u p=%u db=%u l=%u g=%u", n,
	     s->selector, (unsigned long long)s->base, s->limit, s->type, s->s, s->dpl, s->present,
	     s->db, s->l, s->g);
}

void vcpu_dump_regs(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (kvm_vcpu_get_regs(&v->kvm, &r) || kvm_vcpu_get_sregs(&v->kvm, &s)) {
		verr("vCPU %u: cannot read registers", v->kvm.id);
		return;
	}
	verr("vCPU %u registers:", v->kvm.id);
	verr("  rip=%016llx rsp=%016llx rflags=%016llx", r.rip, r.rsp, r.rflags);
	verr("  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx", r.rax, r.rbx, r.rcx, r.rdx);
	verr("  rsi=%016llx rdi=%016llx rbp=%016llx r8 =%016llx", r.rsi, r.rdi, r.rbp, r.r8);
	verr("  r9 =%016llx r10=%016llx r11=%016llx r12=%016llx", r.r9, r.r10, r.r11, r.r12);
	verr("  r13=%016llx r14=%016llx r15=%016llx", r.r13, r.r14, r.r15);
	verr("  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%016llx", s.cr0, s.cr2,
	     s.cr3, s.cr4, s.efer);
	seg_dump("cs", &s.cs);
	seg_dump("ss", &s.ss);
	seg_dump("ds", &s.ds);
	seg_dump("tr", &s.tr);
	verr("  gdt=%016llx/%04x idt=%016llx/%04x", s.gdt.base, s.gdt.limit, s.idt.base,
	     s.idt.limit);
	/* The instruction bytes at RIP, when they are in RAM. */
	uint64_t gpa;
	uint64_t lin = s.cs.base + r.rip;
	if (kvm_vcpu_translate(&v->kvm, lin, &gpa) == 0) {
		const uint8_t *p = gmem_ptr(&v->m->mem, gpa, 16);
		if (p) {
			char hex[64];
			for (int i = 0; i < 16; i++)
				snprintf(hex + 3 * i, 4, "%02x ", p[i]);
			verr("  code at rip: %s", hex);
		}
	}
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->kvm.run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned size = run->io.size;
	/* data_offset/size/count come from KVM, not the guest; still stay inside the page. */
	if ((uint64_t)run->io.data_offset + (uint64_t)size * run->io.count > v->kvm.run_size)
		return;
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(&v->m->pio, run->io.port, data, size);
		else
			bus_read(&v->m->pio, run->io.port, data, size);
	}
}

static void vcpu_handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->kvm.run;
	unsigned len = run->mmio.len;
	if (len == 0 || len > sizeof(run->mmio.data))
		return;
	if (run->mmio.is_write) {
		if (!bus_write(&v->m->mmio, run->mmio.phys_addr, run->mmio.data, len))
			vdebug("unclaimed MMIO write %#llx/%u", run->mmio.phys_addr, len);
	} else {
		bus_read(&v->m->mmio, run->mmio.phys_addr, run->mmio.data, len);
	}
}

/* Returns true when the loop must stop. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->kvm.run;
	v->stats.exits++;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		v->stats.io++;
		vcpu_handle_io(v);
		return false;
	case KVM_EXIT_MMIO:
		v->stats.mmio++;
		vcpu_handle_mmio(v);
		return false;
	case KVM_EXIT_HLT:
		v->stats.halts++;
		return false;
	case KVM_EXIT_INTR:
		v->stats.intr++;
		return false;
	case KVM_EXIT_SHUTDOWN:
		/* Triple fault: hardware resets on it. */
		vinfo("vCPU %u: triple fault, resetting", v->kvm.id);
		machine_request_power(v->m, MACHINE_REQ_RESET);
		return true;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			machine_request_power(v->m, MACHINE_REQ_RESET);
		else
			machine_request_power(v->m, MACHINE_REQ_OFF);
		return true;
	case KVM_EXIT_INTERNAL_ERROR:
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
		    kvm_vcpu_complete_emulation(&v->kvm, &v->m->mem, &v->m->emul_stats) == 0) {
			v->stats.emulated++;
			return false;
		}
		verr("vCPU %u: KVM internal error (suberror %u%s)", v->kvm.id,
		     run->internal.suberror,
		     run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
			     ? ": instruction emulation failed"
			     : "");
		vcpu_dump_regs(v);
		machine_request_crash(v->m);
		return true;
	case KVM_EXIT_FAIL_ENTRY:
		verr("vCPU %u: VM entry failed (hardware reason %#llx)", v->kvm.id,
		     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_dump_regs(v);
		machine_request_crash(v->m);
		return true;
	default:
		verr("vCPU %u: unexpected KVM exit reason %u", v->kvm.id, run->exit_reason);
		vcpu_dump_regs(v);
		machine_request_crash(v->m);
		return true;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct machine *m = v->m;
	char name[16];
	snprintf(name, sizeof(name), "vcpu%u", v->kvm.id);
	pthread_setname_np(pthread_self(), name);

	for (;;) {
		if (machine_vcpu_checkpoint(m, v))
			break;
		int r = kvm_vcpu_run(&v->kvm);
		if (r == -EINTR || r == -EAGAIN) {
			kvm_vcpu_kick_flag(&v->kvm, false);
			v->stats.intr++;
			continue;
		}
		if (r) {
			verr("vCPU %u: KVM_RUN failed: %s", v->kvm.id, strerror(-r));
			machine_request_crash(m);
			break;
		}
		if (vcpu_handle_exit(v))
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (r)
		return -r;
	v->thread_started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->thread_started)
		return;
	kvm_vcpu_kick_flag(&v->kvm, true);
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *v)
{
	if (v->thread_started) {
		pthread_join(v->thread, NULL);
		v->thread_started = false;
	}
}
