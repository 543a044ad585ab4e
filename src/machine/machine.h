/* SPDX-License-Identifier: MIT */
/*
 * The machine: a VM assembled by an explicit builder from its parts (KVM VM, guest memory,
 * buses, legacy devices, PCI host, virtio devices, ACPI, kernel), its vCPU threads, and its
 * state machine:
 *
 *      created --start--> running <--pause/resume--> paused
 *         |                  |                          |
 *         +------------------+---- stop / poweroff -----+--> stopped
 *
 * A guest reset (reboot, triple fault) tears the VM down and builds it again in the same
 * process (state goes running -> running), unless on_reboot=exit, which stops it.
 * machine_run() blocks until the VM is stopped and returns why.
 */
#ifndef VIREO_MACHINE_MACHINE_H
#define VIREO_MACHINE_MACHINE_H

#include "common/compiler.h"
#include "machine/vm_config.h"

enum vm_state { VM_CREATED, VM_RUNNING, VM_PAUSED, VM_STOPPED };

enum vm_exit {
	VM_EXIT_POWEROFF = 0, /* guest powered off, or reset with on_reboot=exit */
	VM_EXIT_STOPPED,      /* stopped through the control socket / console escape */
	VM_EXIT_ERROR,	      /* VMM-side failure while running */
	VM_EXIT_GUEST_CRASH,  /* KVM internal error, emulation failure, failed entry */
};

struct machine;

/* Validate the configuration and build the VM. On failure err holds a one-line reason. */
int machine_create(struct machine **out, const struct vm_config *cfg, char *err,
		   size_t errlen) WUR;
/* Start the vCPUs and block until the VM stops. */
enum vm_exit machine_run(struct machine *m);
void machine_destroy(struct machine *m);
/* Ask a running VM to stop (any thread, async-signal-unsafe): machine_run() returns
 * VM_EXIT_STOPPED. */
void machine_request_stop(struct machine *m);

const char *vm_state_name(enum vm_state s);

#endif
