/* SPDX-License-Identifier: MIT */
/*
 * What a user asks for when creating a VM (the pre-boot configuration phase). Filled by
 * the CLI (and later by the API), validated by machine_create().
 */
#ifndef VIREO_MACHINE_VM_CONFIG_H
#define VIREO_MACHINE_VM_CONFIG_H

#include "common/compiler.h"
#include "net/net.h"
#include "block/block.h"

#define VM_MAX_DISKS 16

#define VM_MAX_NICS 8

/* --io-threads: 1 = one I/O loop for everything; N > 1 = N device I/O threads besides it. */
#define VM_MAX_IO_THREADS 16
#define VM_MAX_IO_POLL_US 1000 /* --io-poll-us upper bound */

enum on_reboot { ON_REBOOT_RESTART, ON_REBOOT_EXIT };

struct vm_config {
	const char *kernel;
	const char *initrd;	 /* NULL: none */
	const char *cmdline;	 /* NULL: default */
	unsigned cpus;		 /* >= 1 */
	uint64_t memory;	 /* bytes */
	const char *cpu_template; /* name, default "host" */
	enum on_reboot on_reboot;
	bool rng;		 /* virtio-rng present */
	const char *api_sock;	 /* control socket path, NULL: default */
	const char *kvm_path;	 /* "/dev/kvm" */
	int console_escape;	 /* escape character (Ctrl-A = 1) */
	bool console;		 /* connect stdin/stdout to COM1 */
	unsigned io_threads;	 /* 1..VM_MAX_IO_THREADS (default 1) */
	unsigned io_poll_us;	 /* 0..VM_MAX_IO_POLL_US: I/O loops poll before sleeping (0 = no) */
	unsigned nr_nics;	 /* --net, in order */
	struct net_config nics[VM_MAX_NICS];
	unsigned nr_disks;
	struct blk_config disks[VM_MAX_DISKS]; /* virtio-blk disks, in PCI slot order */
};

#define VM_DEFAULT_MEMORY (256ULL << 20)
#define VM_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1"
#define VM_MAX_CPUS 255 /* xAPIC IDs, MADT */

void vm_config_defaults(struct vm_config *c);

#endif
