/* SPDX-License-Identifier: MIT */
/* `vireo run`: parse options into a vm_config, build the machine, run it. */
#include "cli/cli.h"
#include "common/log.h"
#include "common/parse.h"
#include "kvm/cpuid.h"
#include "machine/machine.h"
#include "machine/console.h"
#include "net/net.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_run(FILE *f)
{
	fprintf(f,
		"Usage: vireo run --kernel FILE [OPTIONS]\n"
		"       vireo run                 boot the default guest (built by 'make run')\n"
		"\n"
		"  --kernel FILE          bzImage, or an ELF kernel with a PVH entry note\n"
		"  --initrd FILE          initial ramdisk\n"
		"  --cmdline STR          kernel command line (default: \"%s\")\n"
		"  --cpus N               number of vCPUs (default 1)\n"
		"  --memory SIZE          guest RAM: 512M, 2G, ... a bare number is MiB (default 256M)\n"
		"  --cpu-template NAME    CPUID template: host (default) or baseline\n"
		"  --on-reboot ACTION     restart (default) or exit when the guest reboots\n"
		"  --no-rng               leave out the virtio-rng device\n"
		"  --net SPEC             a virtio-net NIC (repeatable): tap=IFNAME, network=BRIDGE\n"
		"                         or user, then [,mac=MAC][,hostfwd=tcp:HPORT-:GPORT]\n"
		"                         [,vhost=on|off][,queues=N (queue pairs, 1-16; tap/network)]\n"
		"  --disk PATH[,format=raw|qcow2|vmdk|vhd][,readonly=on][,serial=S]\n"
		"         [,cache=writeback|writethrough|none|unsafe]\n"
		"                         a virtio-blk disk (repeatable; the format is never guessed)\n"
		"  --io-threads N         device I/O threads, 1-16 (default 1: one I/O thread for\n"
		"                         everything); N > 1 spreads virtio-blk queues and virtio-net\n"
		"                         queue pairs round robin over N threads io0..ioN-1\n"
		"  --io-poll-us N         I/O threads keep polling for N microseconds (0-1000,\n"
		"                         default 0) after their last event before they sleep:\n"
		"                         lower latency for more host CPU\n"
		"  --api-sock PATH        control socket (default $XDG_RUNTIME_DIR/vireo-PID.sock)\n"
		"  --kvm-device PATH      KVM device (default /dev/kvm)\n"
		"  -v, --verbose          more log output (repeat for debug)\n"
		"  -q, --quiet            errors only\n"
		"\n"
		"The serial console is on stdin/stdout; press Ctrl-A x to quit, Ctrl-A Ctrl-A to\n"
		"send Ctrl-A. Exit status: 0 guest powered off (or rebooted with --on-reboot exit,\n"
		"or stopped), 1 error, 2 bad usage, 3 guest crashed the vCPU (register dump on stderr).\n",
		VM_DEFAULT_CMDLINE);
	fprintf(f, "\nCPU templates:\n");
	for (const struct cpu_template *const *t = cpu_template_list(); *t; t++)
		fprintf(f, "  %-10s %s\n", (*t)->name, (*t)->description);
}

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_TEMPLATE,
	OPT_ON_REBOOT,
	OPT_NO_RNG,
	OPT_NET,
	OPT_API_SOCK,
	OPT_KVM,
	OPT_DISK,
	OPT_IO_THREADS,
	OPT_IO_POLL_US,
	OPT_HELP,
};

static const struct option run_opts[] = {
	{"kernel", required_argument, NULL, OPT_KERNEL},
	{"initrd", required_argument, NULL, OPT_INITRD},
	{"cmdline", required_argument, NULL, OPT_CMDLINE},
	{"cpus", required_argument, NULL, OPT_CPUS},
	{"memory", required_argument, NULL, OPT_MEMORY},
	{"cpu-template", required_argument, NULL, OPT_TEMPLATE},
	{"on-reboot", required_argument, NULL, OPT_ON_REBOOT},
	{"no-rng", no_argument, NULL, OPT_NO_RNG},
	{"net", required_argument, NULL, OPT_NET},
	{"api-sock", required_argument, NULL, OPT_API_SOCK},
	{"kvm-device", required_argument, NULL, OPT_KVM},
	{"disk", required_argument, NULL, OPT_DISK},
	{"io-threads", required_argument, NULL, OPT_IO_THREADS},
	{"io-poll-us", required_argument, NULL, OPT_IO_POLL_US},
	{"verbose", no_argument, NULL, 'v'},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, OPT_HELP},
	{NULL, 0, NULL, 0},
};

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "vireo: ");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	fprintf(stderr, fmt, arg);
#pragma GCC diagnostic pop
	fprintf(stderr, " (try 'vireo run --help')\n");
	return CLI_EXIT_USAGE;
}

/* Storage for values read from the default-guest file; they live until exit. */
static char dg_kernel[PATH_MAX], dg_initrd[PATH_MAX], dg_cmdline[4096], dg_template[64];

/*
 * The default guest: tools/guest-kit/build.sh writes KEY=VALUE lines (kernel, initrd,
 * cmdline, cpu_template) to $VIREO_CACHE/default-guest.conf (~/.cache/vireo by default).
 */
static int load_default_guest(struct vm_config *c)
{
	char path[PATH_MAX];
	const char *cache = getenv("VIREO_CACHE");
	const char *home = getenv("HOME");
	if (cache && *cache)
		snprintf(path, sizeof(path), "%s/default-guest.conf", cache);
	else
		snprintf(path, sizeof(path), "%s/.cache/vireo/default-guest.conf",
			 home ? home : "/root");
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr,
			"vireo: no --kernel given and no default guest at '%s' (build it with "
			"'make run' or tools/guest-kit/build.sh)\n",
			path);
		return -ENOENT;
	}
	char line[4200];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq++ = 0;
		if (strcmp(line, "kernel") == 0)
			snprintf(dg_kernel, sizeof(dg_kernel), "%s", eq);
		else if (strcmp(line, "initrd") == 0)
			snprintf(dg_initrd, sizeof(dg_initrd), "%s", eq);
		else if (strcmp(line, "cmdline") == 0)
			snprintf(dg_cmdline, sizeof(dg_cmdline), "%s", eq);
		else if (strcmp(line, "cpu_template") == 0)
			snprintf(dg_template, sizeof(dg_template), "%s", eq);
	}
	fclose(f);
	if (!dg_kernel[0]) {
		fprintf(stderr, "vireo: '%s' names no kernel\n", path);
		return -EINVAL;
	}
	c->kernel = dg_kernel;
	if (dg_initrd[0])
		c->initrd = dg_initrd;
	if (dg_cmdline[0])
		c->cmdline = dg_cmdline;
	if (dg_template[0])
		c->cpu_template = dg_template;
	return 0;
}

struct stop_watch {
	struct machine *m;
	sigset_t sigs;
	bool done;
};

static void *stop_watch_thread(void *arg)
{
	struct stop_watch *sw = arg;
	const struct timespec tick = {.tv_nsec = 100 * 1000 * 1000};
	while (!__atomic_load_n(&sw->done, __ATOMIC_ACQUIRE)) {
		int sig = sigtimedwait(&sw->sigs, NULL, &tick);
		if (sig > 0 && !__atomic_load_n(&sw->done, __ATOMIC_ACQUIRE)) {
			vinfo("signal %d: stopping the VM", sig);
			machine_request_stop(sw->m);
		}
	}
	return NULL;
}

int cli_run(int argc, char **argv)
{
	struct vm_config cfg;
	int verbose = 0;
	bool quiet = false, template_given = false;
	uint64_t v;
	int o, r;

	vm_config_defaults(&cfg);
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":vq", run_opts, NULL)) != -1) {
		switch (o) {
		case OPT_KERNEL:
			cfg.kernel = optarg;
			break;
		case OPT_INITRD:
			cfg.initrd = optarg;
			break;
		case OPT_CMDLINE:
			cfg.cmdline = optarg;
			break;
		case OPT_CPUS:
			r = parse_u64(optarg, 0, UINT64_MAX, &v);
			if (r == -ERANGE)
				return usage_error("--cpus '%s': number too large", optarg);
			if (r)
				return usage_error("--cpus '%s': not a positive integer", optarg);
			if (v == 0)
				return usage_error("--cpus '%s': must be at least 1", optarg);
			if (v > VM_MAX_CPUS)
				return usage_error("--cpus '%s': too many vCPUs (Vireo supports at most "
						   "255)", optarg);
			cfg.cpus = (unsigned)v;
			break;
		case OPT_MEMORY:
			r = parse_size(optarg, true, &v);
			if (r == -ERANGE)
				return usage_error("--memory '%s': too large", optarg);
			if (r)
				return usage_error("--memory '%s': not a size (e.g. 512M, 2G)", optarg);
			if (v == 0)
				return usage_error("--memory '%s': must not be zero", optarg);
			cfg.memory = v;
			break;
		case OPT_TEMPLATE:
			if (!cpu_template_find(optarg))
				return usage_error("--cpu-template '%s': unknown (host, baseline)",
						   optarg);
			cfg.cpu_template = optarg;
			template_given = true;
			break;
		case OPT_ON_REBOOT:
			if (strcmp(optarg, "restart") == 0)
				cfg.on_reboot = ON_REBOOT_RESTART;
			else if (strcmp(optarg, "exit") == 0)
				cfg.on_reboot = ON_REBOOT_EXIT;
			else
				return usage_error("--on-reboot '%s': expected restart or exit",
						   optarg);
			break;
		case OPT_NO_RNG:
			cfg.rng = false;
			break;
		case OPT_NET: {
			char nerr[256];
			if (cfg.nr_nics >= VM_MAX_NICS)
				return usage_error("--net '%s': too many NICs (at most 8)", optarg);
			if (net_parse_opt(optarg, &cfg.nics[cfg.nr_nics], nerr, sizeof(nerr)))
				return usage_error("%s", nerr);
			cfg.nr_nics++;
			break;
		}
		case OPT_API_SOCK:
			if (!*optarg)
				return usage_error("--api-sock '%s': empty path", optarg);
			cfg.api_sock = optarg;
			break;
		case OPT_KVM:
			if (!*optarg)
				return usage_error("--kvm-device '%s': empty path", optarg);
			cfg.kvm_path = optarg;
			break;
		case OPT_DISK: {
			char derr[256];
			if (cfg.nr_disks >= VM_MAX_DISKS)
				return usage_error("--disk '%s': too many disks (at most 16)", optarg);
			if (blk_parse_disk_opt(optarg, &cfg.disks[cfg.nr_disks], derr, sizeof(derr))) {
				fprintf(stderr, "vireo: %s (try 'vireo run --help')\n", derr);
				return CLI_EXIT_USAGE;
			}
			cfg.nr_disks++;
			break;
		}
		case OPT_IO_THREADS:
			r = parse_u64(optarg, 0, UINT64_MAX, &v);
			if (r || v < 1 || v > VM_MAX_IO_THREADS)
				return usage_error("--io-threads '%s': must be a number from 1 to 16",
						   optarg);
			cfg.io_threads = (unsigned)v;
			break;
		case OPT_IO_POLL_US:
			r = parse_u64(optarg, 0, UINT64_MAX, &v);
			if (r || v > VM_MAX_IO_POLL_US)
				return usage_error("--io-poll-us '%s': must be a number from 0 to 1000",
						   optarg);
			cfg.io_poll_us = (unsigned)v;
			break;
		case 'v':
			verbose++;
			break;
		case 'q':
			quiet = true;
			break;
		case OPT_HELP:
			usage_run(stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	vlog_set_level(quiet ? VLOG_ERR : verbose >= 2 ? VLOG_DEBUG : verbose ? VLOG_INFO : VLOG_WARN);
	for (unsigned i = 0; i < cfg.nr_nics; i++)
		if (cfg.nics[i].queues > cfg.cpus)
			vwarn("--net #%u: queues=%u is more than the %u vCPU(s); a Linux guest "
			      "uses one queue pair per vCPU unless told otherwise (ethtool -L)",
			      i + 1, cfg.nics[i].queues, cfg.cpus);
	if (cfg.kernel && !*cfg.kernel)
		return usage_error("--kernel '%s': empty path", cfg.kernel);
	if (!cfg.kernel) {
		const char *t = cfg.cpu_template;
		if (load_default_guest(&cfg))
			return CLI_EXIT_ERROR;
		if (template_given)
			cfg.cpu_template = t;
	}

	/*
	 * SIGTERM, SIGINT and SIGHUP stop the VM cleanly (terminal restored, control socket
	 * removed), like `vireo ctl SOCK stop`. They are blocked in every thread and taken by
	 * a small thread with sigtimedwait; the set is blocked before any thread exists.
	 */
	sigset_t stop_sigs;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);

	struct machine *m;
	char err[512];
	r = machine_create(&m, &cfg, err, sizeof(err));
	if (r) {
		fprintf(stderr, "vireo: %s\n", err);
		return CLI_EXIT_ERROR;
	}
	struct stop_watch sw = {.m = m, .sigs = stop_sigs};
	pthread_t swt;
	bool sw_started = pthread_create(&swt, NULL, stop_watch_thread, &sw) == 0;
	enum vm_exit ex = machine_run(m);
	if (sw_started) {
		/* Wake the watcher at once (it ignores signals once done is set). */
		__atomic_store_n(&sw.done, true, __ATOMIC_RELEASE);
		pthread_kill(swt, SIGHUP);
		pthread_join(swt, NULL);
	}
	machine_destroy(m);
	console_restore_terminal();
	switch (ex) {
	case VM_EXIT_POWEROFF:
	case VM_EXIT_STOPPED:
		return CLI_EXIT_OK;
	case VM_EXIT_GUEST_CRASH:
		return CLI_EXIT_GUEST_CRASH;
	default:
		return CLI_EXIT_ERROR;
	}
}
