/* SPDX-License-Identifier: MIT */
/*
 * Internals of the machine shared by machine.c (builder, state machine), vcpu.c (run
 * loop), devices.c (device attach steps) and control.c (control socket).
 */
#ifndef VIREO_MACHINE_MACHINE_PRIV_H
#define VIREO_MACHINE_MACHINE_PRIV_H

#include "machine/machine.h"
#include "machine/vcpu.h"
#include "machine/platform_kvm.h"
#include "machine/devices.h"
#include "bus/bus.h"
#include "common/evloop.h"
#include "kvm/cpuid.h"
#include "kvm/emulate.h"
#include "kvm/kvm.h"
#include "memory/gmem.h"
#include <pthread.h>

#define CONTROL_MAX_CLIENTS 16
#define CONTROL_CLIENT_TIMEOUT 3 /* seconds to send a command line */

enum machine_req {
	MACHINE_REQ_NONE = 0,
	MACHINE_REQ_RESET, /* guest reboot / triple fault */
	MACHINE_REQ_OFF,   /* guest powered off */
	MACHINE_REQ_STOP,  /* user stop (control socket, console escape) */
	MACHINE_REQ_CRASH, /* unrecoverable vCPU error, already reported */
};

struct machine {
	struct vm_config cfg;
	const struct cpu_template *tmpl;
	struct kvm_sys kvm;

	/* Rebuilt on every (re)boot. */
	struct kvm_vm vm;
	struct gmem mem;
	struct bus pio, mmio;
	struct evloop loop; /* main I/O thread: console, control socket, backends' completions */
	struct evloop io_loops[VM_MAX_IO_THREADS]; /* --io-threads > 1: "io0".. (queue groups) */
	unsigned nr_io_loops;			   /* initialised ones */
	struct platform_kvm plat;
	struct machine_devices dev;
	struct vcpu *vcpus;
	bool built;

	/* Persistent for the life of the process. */
	struct machine_persist persist; /* CMOS NVRAM, console, ... (devices.h) */
	int ctl_fd;			/* control socket listener, -1 if none */
	int ctl_timer_fd;		/* 4 Hz timer dropping idle control clients */
	struct ctl_client *ctl_client[CONTROL_MAX_CLIENTS]; /* open control connections (I/O thread only) */
	char *ctl_path;
	struct emul_stats emul_stats;
	unsigned boots;
	uint64_t start_ns;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vm_state state;
	enum machine_req req;
	bool pause_req;
	bool stop_vcpus;
	unsigned paused_vcpus;
};

/* Called by vCPU threads and devices: record a request and wake the main thread. The
 * first request wins; a crash only counts when nothing else is pending. */
void machine_request_power(struct machine *m, enum machine_req req);
void machine_request_crash(struct machine *m);
/* vCPU thread: park here while paused; returns true when the vCPU must exit. */
bool machine_vcpu_checkpoint(struct machine *m, struct vcpu *v);

/* Control-plane operations (control socket, console). */
int machine_pause(struct machine *m) WUR;
int machine_resume(struct machine *m) WUR;
/* Graceful: press the ACPI power button. */
int machine_shutdown(struct machine *m) WUR;
/* JSON object describing the VM (state, vcpus, memory, statistics). */
int machine_status_json(struct machine *m, char *buf, size_t len);

/* control.c */
int control_open(struct machine *m, const char *path, char *err, size_t errlen) WUR;
int control_attach(struct machine *m) WUR; /* register the listener on the I/O loop */
void control_detach(struct machine *m); /* after the I/O loop stopped */
void control_close(struct machine *m);

#endif
