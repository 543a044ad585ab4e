/* SPDX-License-Identifier: MIT */
/*
 * Completing, in userspace, an instruction KVM's emulator could not (KVM_EXIT_INTERNAL_ERROR
 * with suberror KVM_INTERNAL_ERROR_EMULATION), with the pure emulator of kvm/emulate.h.
 *
 * kvm_vcpu_complete_emulation(), called by the vCPU thread on that exit:
 *   - takes the instruction bytes from the exit (KVM_CAP_EXIT_ON_EMULATION_FAILURE) or
 *     fetches them at CS.base + RIP through KVM_TRANSLATE and guest RAM, page by page;
 *   - runs the emulator with the vCPU's registers and mode; memory operands go through
 *     KVM_TRANSLATE + gmem_ptr (guest RAM only: an operand in MMIO gives -ENOTSUP);
 *   - writes the registers back and/or injects #BP/#UD/#NM/#GP; returns 0: re-enter KVM_RUN;
 *   - returns -ENOTSUP (nothing changed) when it cannot: the caller dumps and stops the VM.
 * The virtual CPU is taken to implement an instruction when the HOST CPU does: outside the
 * emulator the guest runs on the host CPU, which executes e.g. popcnt whatever the guest's
 * CPUID says; emulating the same thing keeps both paths identical.
 * Known gaps (documented, not silent): page-level write protection, U/S, SMAP and PKU are
 * not checked for memory operands (KVM_TRANSLATE does not report them); RFLAGS.TF single-step
 * and the STI/MOV SS interrupt shadow are not advanced over an emulated instruction.
 *
 * Registers come from kvm_run (s.regs, written back through kvm_dirty_regs) when the run loop
 * set kvm_valid_regs to KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS (KVM_CAP_SYNC_REGS), else from
 * KVM_GET_REGS/KVM_GET_SREGS/KVM_SET_REGS: on the nested build hosts each ioctl costs ~4 us.
 *
 * Thread safety: one call per vCPU thread at a time; the statistics are shared atomics.
 */
#ifndef VIREO_KVM_EMULATE_VCPU_H
#define VIREO_KVM_EMULATE_VCPU_H

#include "kvm/emulate.h"
#include "kvm/kvm.h"
#include "memory/gmem.h"

int kvm_vcpu_complete_emulation(struct kvm_vcpu *v, const struct gmem *m,
				struct emul_stats *st) WUR;

/* kvm_vm_enable_emulation_exits() is declared in kvm/emulate.h. */

/* EMUL_F_* features of the host CPU (computed once). */
uint32_t emul_host_features(void);

#endif
