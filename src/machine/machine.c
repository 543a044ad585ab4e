/* SPDX-License-Identifier: MIT */
/*
 * The machine builder and state machine. See machine.h for the states.
 * Attach order (machine_build): KVM VM -> guest RAM -> irqchip/PIT -> buses and I/O loop ->
 * platform -> devices -> ACPI -> kernel -> vCPUs. Teardown runs in reverse.
 */
#include "machine/machine_priv.h"
#include "boot/boot.h"
#include "common/log.h"
#include "memory/layout.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void vm_config_defaults(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus = 1;
	c->memory = VM_DEFAULT_MEMORY;
	c->cpu_template = "host";
	c->on_reboot = ON_REBOOT_RESTART;
	c->rng = true;
	c->kvm_path = "/dev/kvm";
	c->console_escape = 0x01;
	c->console = true;
	c->io_threads = 1;
}

const char *vm_state_name(enum vm_state s)
{
	switch (s) {
	case VM_CREATED:
		return "created";
	case VM_RUNNING:
		return "running";
	case VM_PAUSED:
		return "paused";
	case VM_STOPPED:
		return "stopped";
	}
	return "unknown";
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) PRINTF_FMT(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- validation against the host ----------------------------------------------------------- */

static int machine_check_host(struct machine *m, char *err, size_t errlen)
{
	const struct vm_config *c = &m->cfg;
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t host_mem = (pages > 0 && psz > 0) ? (uint64_t)pages * (uint64_t)psz : 0;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned max_cpus = MIN(m->kvm.max_vcpus, (unsigned)VM_MAX_CPUS);

	if (online > 0)
		max_cpus = MIN(max_cpus, (unsigned)online);
	if (c->cpus == 0 || c->cpus > max_cpus) {
		set_err(err, errlen,
			"--cpus %u: must be between 1 and %u (host CPUs online: %ld, KVM maximum: %u)",
			c->cpus, max_cpus, online, m->kvm.max_vcpus);
		return -EINVAL;
	}
	if (c->io_threads < 1 || c->io_threads > VM_MAX_IO_THREADS) {
		set_err(err, errlen, "--io-threads %u: must be between 1 and %u", c->io_threads,
			VM_MAX_IO_THREADS);
		return -EINVAL;
	}
	if (c->io_poll_us > VM_MAX_IO_POLL_US) {
		set_err(err, errlen, "--io-poll-us %u: must be at most %u", c->io_poll_us,
			VM_MAX_IO_POLL_US);
		return -EINVAL;
	}
	if (c->memory < (16ULL << 20)) {
		set_err(err, errlen, "--memory: %llu bytes is too small (minimum 16 MiB)",
			(unsigned long long)c->memory);
		return -EINVAL;
	}
	if (c->memory & 0xfff) {
		set_err(err, errlen, "--memory: must be a multiple of 4 KiB");
		return -EINVAL;
	}
	if (host_mem && c->memory > host_mem) {
		set_err(err, errlen, "--memory: %llu MiB is more than the host has (%llu MiB)",
			(unsigned long long)(c->memory >> 20), (unsigned long long)(host_mem >> 20));
		return -ENOMEM;
	}
	return 0;
}

/* ---- build / teardown of one boot ---------------------------------------------------------- */

static void machine_teardown(struct machine *m)
{
	if (!m->built)
		return;
	evloop_stop(&m->loop);
	for (unsigned i = 0; i < m->nr_io_loops; i++)
		evloop_stop(&m->io_loops[i]);
	control_detach(m);
	if (m->vcpus) {
		for (unsigned i = 0; i < m->cfg.cpus; i++)
			kvm_vcpu_destroy(&m->vcpus[i].kvm);
		free(m->vcpus);
		m->vcpus = NULL;
	}
	machine_devices_destroy(m);
	platform_kvm_fini(&m->plat);
	evloop_fini(&m->loop);
	for (unsigned i = 0; i < m->nr_io_loops; i++)
		evloop_fini(&m->io_loops[i]);
	m->nr_io_loops = 0;
	bus_fini(&m->pio);
	bus_fini(&m->mmio);
	kvm_vm_destroy(&m->vm);
	m->built = false;
}

/*
 * --io-threads N > 1: N device I/O loops ("io0".."ioN-1") besides the main loop; devices
 * get them round robin per queue group (platform io_loop_next). N = 1: none, everything
 * stays on the main loop as before.
 */
static int machine_io_loops_init(struct machine *m)
{
	unsigned n = m->cfg.io_threads > 1 ? m->cfg.io_threads : 0;
	for (unsigned i = 0; i < n; i++) {
		char name[16];
		int r = evloop_init(&m->io_loops[i]);
		if (r)
			return r;
		m->nr_io_loops++;
		snprintf(name, sizeof(name), "io%u", i);
		evloop_set_name(&m->io_loops[i], name);
	}
	platform_kvm_set_io_loops(&m->plat, m->io_loops, n);
	return 0;
}

static int machine_build(struct machine *m, char *err, size_t errlen)
{
	int r;
	struct boot_entry entry;
	uint64_t rsdp = 0;

	memset(&m->vm, 0, sizeof(m->vm));
	m->vm.fd = -1;
	m->built = true;

	r = kvm_vm_create(&m->vm, &m->kvm);
	if (r) {
		set_err(err, errlen, "cannot create KVM VM: %s", strerror(-r));
		goto fail;
	}
	for (unsigned i = 0; i < m->mem.nr_regions; i++) {
		const struct gmem_region *g = &m->mem.regions[i];
		r = kvm_vm_set_memory(&m->vm, i, g->gpa, g->size, g->hva);
		if (r) {
			set_err(err, errlen, "cannot map guest memory into KVM: %s", strerror(-r));
			goto fail;
		}
	}
	r = kvm_vm_create_irqchip(&m->vm);
	if (r) {
		set_err(err, errlen, "cannot create the in-kernel irqchip/PIT: %s", strerror(-r));
		goto fail;
	}
	r = kvm_vm_enable_emulation_exits(&m->vm);
	if (r)
		vdebug("KVM_CAP_EXIT_ON_EMULATION_FAILURE not enabled: %s", strerror(-r));
	r = bus_init(&m->pio, "pio");
	if (!r)
		r = bus_init(&m->mmio, "mmio");
	if (!r)
		r = evloop_init(&m->loop);
	if (!r)
		r = platform_kvm_init(&m->plat, &m->vm, &m->mem, &m->loop, &m->mmio, &m->pio);
	if (r) {
		set_err(err, errlen, "cannot set up buses and I/O loop: %s", strerror(-r));
		goto fail;
	}
	r = machine_io_loops_init(m);
	if (r) {
		set_err(err, errlen, "cannot set up %u I/O threads: %s", m->cfg.io_threads,
			strerror(-r));
		goto fail;
	}
	r = machine_devices_create(m, err, errlen);
	if (r)
		goto fail;
	r = machine_acpi_build(m, &rsdp, err, errlen);
	if (r)
		goto fail;

	struct boot_params_in bin = {
		.kernel_path = m->cfg.kernel,
		.initrd_path = m->cfg.initrd,
		.cmdline = m->cfg.cmdline ? m->cfg.cmdline : VM_DEFAULT_CMDLINE,
		.rsdp_gpa = rsdp,
	};
	r = boot_load(&m->mem, &bin, &entry, err, errlen);
	if (r)
		goto fail;

	m->vcpus = calloc(m->cfg.cpus, sizeof(*m->vcpus));
	if (!m->vcpus) {
		r = -ENOMEM;
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < m->cfg.cpus; i++)
		m->vcpus[i].kvm.fd = -1;
	for (unsigned i = 0; i < m->cfg.cpus; i++) {
		struct vcpu *v = &m->vcpus[i];
		struct kvm_cpuid2 *cpuid = NULL;
		v->m = m;
		r = kvm_vcpu_create(&v->kvm, &m->vm, i);
		if (r) {
			set_err(err, errlen, "cannot create vCPU %u: %s", i, strerror(-r));
			goto fail;
		}
		r = cpuid_build(m->kvm.supported_cpuid, m->tmpl, i, m->cfg.cpus, &cpuid);
		if (!r)
			r = vcpu_setup(v, cpuid, &entry);
		free(cpuid);
		if (r) {
			set_err(err, errlen, "cannot set up vCPU %u: %s", i, strerror(-r));
			goto fail;
		}
	}
	r = machine_devices_attach_io(m, err, errlen);
	if (r)
		goto fail;
	r = control_attach(m);
	if (r) {
		set_err(err, errlen, "cannot watch the control socket: %s", strerror(-r));
		goto fail;
	}
	/* Every loop that serves devices polls alike: the main loop serves them too. */
	evloop_set_poll_us(&m->loop, m->cfg.io_poll_us);
	for (unsigned i = 0; i < m->nr_io_loops; i++)
		evloop_set_poll_us(&m->io_loops[i], m->cfg.io_poll_us);
	r = evloop_start(&m->loop);
	for (unsigned i = 0; !r && i < m->nr_io_loops; i++)
		r = evloop_start(&m->io_loops[i]);
	if (r) {
		set_err(err, errlen, "cannot start the I/O threads: %s", strerror(-r));
		goto fail;
	}
	m->boots++;
	return 0;
fail:
	machine_teardown(m);
	return r ? r : -EINVAL;
}

/* ---- public lifecycle ----------------------------------------------------------------------- */

int machine_create(struct machine **out, const struct vm_config *cfg, char *err, size_t errlen)
{
	const char *missing = NULL;
	int r;
	struct machine *m = calloc(1, sizeof(*m));
	if (!m) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->cfg = *cfg;
	m->ctl_fd = -1;
	m->ctl_timer_fd = -1;
	m->kvm.fd = -1;
	m->mem.fd = -1;
	m->state = VM_CREATED;
	m->start_ns = now_ns();
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);

	m->tmpl = cpu_template_find(cfg->cpu_template ? cfg->cpu_template : "host");
	if (!m->tmpl) {
		set_err(err, errlen, "unknown CPU template '%s' (known: host, baseline)",
			cfg->cpu_template);
		r = -EINVAL;
		goto fail;
	}
	r = kvm_sys_open(&m->kvm, cfg->kvm_path, &missing);
	if (r == -ENOTSUP) {
		set_err(err, errlen, "%s: KVM lacks a required capability: %s", cfg->kvm_path,
			missing);
		goto fail;
	} else if (r == -ENODEV) {
		set_err(err, errlen, "%s: not a KVM device", cfg->kvm_path);
		goto fail;
	} else if (r == -ENOENT) {
		set_err(err, errlen, "%s: no such device (is the kvm module loaded?)", cfg->kvm_path);
		goto fail;
	} else if (r == -EACCES || r == -EPERM) {
		set_err(err, errlen, "%s: permission denied (add your user to the 'kvm' group)",
			cfg->kvm_path);
		goto fail;
	} else if (r) {
		set_err(err, errlen, "%s: cannot open: %s", cfg->kvm_path, strerror(-r));
		goto fail;
	}
	r = machine_check_host(m, err, errlen);
	if (r)
		goto fail;
	r = vcpu_signals_init();
	if (r) {
		set_err(err, errlen, "cannot install signal handler: %s", strerror(-r));
		goto fail;
	}
	/* RAM outlives a guest reset, as on real hardware (the kernel is loaded again). */
	r = gmem_create(&m->mem, m->cfg.memory, 0);
	if (r) {
		set_err(err, errlen, "cannot allocate %llu MiB of guest memory: %s",
			(unsigned long long)(m->cfg.memory >> 20), strerror(-r));
		goto fail;
	}
	r = machine_persist_init(m, err, errlen);
	if (r)
		goto fail;
	r = control_open(m, cfg->api_sock, err, errlen);
	if (r)
		goto fail;
	r = machine_build(m, err, errlen);
	if (r)
		goto fail;
	*out = m;
	return 0;
fail:
	machine_destroy(m);
	return r;
}

void machine_destroy(struct machine *m)
{
	if (!m)
		return;
	machine_teardown(m);
	control_close(m);
	machine_persist_fini(m);
	gmem_destroy(&m->mem);
	if (m->kvm.fd >= 0)
		kvm_sys_close(&m->kvm);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- requests from vCPUs and devices ------------------------------------------------------- */

void machine_request_power(struct machine *m, enum machine_req req)
{
	pthread_mutex_lock(&m->lock);
	if (m->req == MACHINE_REQ_NONE)
		m->req = req;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

void machine_request_crash(struct machine *m)
{
	pthread_mutex_lock(&m->lock);
	/* A vCPU that kept running after a reset/power-off request may fail on what follows
	 * (e.g. a guest's real-mode fallback after its reset write): the request stands. */
	if (m->req == MACHINE_REQ_NONE)
		m->req = MACHINE_REQ_CRASH;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

bool machine_vcpu_checkpoint(struct machine *m, struct vcpu *v)
{
	(void)v;
	bool stop;
	pthread_mutex_lock(&m->lock);
	while (m->pause_req && !m->stop_vcpus) {
		m->paused_vcpus++;
		pthread_cond_broadcast(&m->cond);
		pthread_cond_wait(&m->cond, &m->lock);
		m->paused_vcpus--;
	}
	/* Once a request is pending, no vCPU re-enters the guest. */
	stop = m->stop_vcpus || m->req != MACHINE_REQ_NONE;
	pthread_mutex_unlock(&m->lock);
	return stop;
}

static void machine_kick_all(struct machine *m)
{
	for (unsigned i = 0; i < m->cfg.cpus; i++)
		vcpu_kick(&m->vcpus[i]);
}

int machine_pause(struct machine *m)
{
	pthread_mutex_lock(&m->lock);
	if (m->state != VM_RUNNING) {
		int r = m->state == VM_PAUSED ? 0 : -EINVAL;
		pthread_mutex_unlock(&m->lock);
		return r;
	}
	m->pause_req = true;
	pthread_mutex_unlock(&m->lock);
	machine_kick_all(m);
	pthread_mutex_lock(&m->lock);
	while (m->paused_vcpus < m->cfg.cpus && m->req == MACHINE_REQ_NONE)
		pthread_cond_wait(&m->cond, &m->lock);
	if (m->req == MACHINE_REQ_NONE)
		m->state = VM_PAUSED;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int machine_resume(struct machine *m)
{
	pthread_mutex_lock(&m->lock);
	if (m->state != VM_PAUSED) {
		int r = m->state == VM_RUNNING ? 0 : -EINVAL;
		pthread_mutex_unlock(&m->lock);
		return r;
	}
	m->pause_req = false;
	m->state = VM_RUNNING;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void machine_request_stop(struct machine *m)
{
	machine_request_power(m, MACHINE_REQ_STOP);
}

/* ---- main loop ------------------------------------------------------------------------------ */

static void machine_stop_vcpus(struct machine *m)
{
	pthread_mutex_lock(&m->lock);
	m->stop_vcpus = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	machine_kick_all(m);
	for (unsigned i = 0; i < m->cfg.cpus; i++)
		vcpu_join(&m->vcpus[i]);
	pthread_mutex_lock(&m->lock);
	m->stop_vcpus = false;
	m->pause_req = false;
	pthread_mutex_unlock(&m->lock);
}

enum vm_exit machine_run(struct machine *m)
{
	char err[512];
	for (;;) {
		pthread_mutex_lock(&m->lock);
		m->req = MACHINE_REQ_NONE;
		m->state = VM_RUNNING;
		pthread_mutex_unlock(&m->lock);
		for (unsigned i = 0; i < m->cfg.cpus; i++) {
			int r = vcpu_start(&m->vcpus[i]);
			if (r) {
				verr("cannot start vCPU %u: %s", i, strerror(-r));
				machine_request_crash(m);
				break;
			}
		}
		pthread_mutex_lock(&m->lock);
		while (m->req == MACHINE_REQ_NONE)
			pthread_cond_wait(&m->cond, &m->lock);
		enum machine_req req = m->req;
		pthread_mutex_unlock(&m->lock);

		machine_stop_vcpus(m);
		if (req == MACHINE_REQ_RESET && m->cfg.on_reboot == ON_REBOOT_RESTART) {
			vinfo("guest reset: restarting the VM");
			machine_teardown(m);
			if (machine_build(m, err, sizeof(err))) {
				verr("restart failed: %s", err);
				m->state = VM_STOPPED;
				return VM_EXIT_ERROR;
			}
			continue;
		}
		pthread_mutex_lock(&m->lock);
		m->state = VM_STOPPED;
		pthread_mutex_unlock(&m->lock);
		switch (req) {
		case MACHINE_REQ_RESET:
		case MACHINE_REQ_OFF:
			return VM_EXIT_POWEROFF;
		case MACHINE_REQ_STOP:
			return VM_EXIT_STOPPED;
		default:
			return VM_EXIT_GUEST_CRASH;
		}
	}
}

/* snprintf at buf+*off, keeping *off within len (output is cut, never overflowed). */
static void jappend(char *buf, size_t len, size_t *off, const char *fmt, ...) PRINTF_FMT(4, 5);
static void jappend(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	if (*off >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = MIN(len - 1, *off + (size_t)n);
}

int machine_status_json(struct machine *m, char *buf, size_t len)
{
	uint64_t exits = 0, io = 0, mmio = 0, emulated = 0;
	size_t off = 0;
	pthread_mutex_lock(&m->lock);
	enum vm_state st = m->state;
	pthread_mutex_unlock(&m->lock);
	for (unsigned i = 0; m->vcpus && i < m->cfg.cpus; i++) {
		exits += __atomic_load_n(&m->vcpus[i].stats.exits, __ATOMIC_RELAXED);
		io += __atomic_load_n(&m->vcpus[i].stats.io, __ATOMIC_RELAXED);
		mmio += __atomic_load_n(&m->vcpus[i].stats.mmio, __ATOMIC_RELAXED);
		emulated += __atomic_load_n(&m->vcpus[i].stats.emulated, __ATOMIC_RELAXED);
	}
	char emul[256];
	if (emul_stats_format(&m->emul_stats, emul, sizeof(emul)) < 0)
		emul[0] = 0;
	jappend(buf, len, &off,
		"{\"state\":\"%s\",\"pid\":%d,\"vcpus\":%u,\"memory_bytes\":%llu,"
		"\"cpu_template\":\"%s\",\"boots\":%u,\"uptime_ms\":%llu,"
		"\"exits\":%llu,\"io_exits\":%llu,\"mmio_exits\":%llu,"
		"\"emulated\":%llu,\"emulated_detail\":\"%s\",\"msi_fired\":%llu",
		vm_state_name(st), (int)getpid(), m->cfg.cpus, (unsigned long long)m->cfg.memory,
		m->tmpl->name, m->boots, (unsigned long long)((now_ns() - m->start_ns) / 1000000),
		(unsigned long long)exits, (unsigned long long)io, (unsigned long long)mmio,
		(unsigned long long)emulated, emul,
		(unsigned long long)__atomic_load_n(&m->plat.msi_fired, __ATOMIC_RELAXED));
	/* Device statistics (the I/O thread serves this, so the devices exist). */
	if (m->dev.rng) {
		struct virtio_rng_stats rs;
		virtio_rng_get_stats(m->dev.rng, &rs);
		jappend(buf, len, &off, ",\"rng\":{\"requests\":%llu,\"bytes\":%llu,\"errors\":%llu}",
			(unsigned long long)rs.requests, (unsigned long long)rs.bytes,
			(unsigned long long)rs.errors);
	}
	jappend(buf, len, &off, ",\"disks\":[");
	for (unsigned i = 0; i < m->cfg.nr_disks; i++) {
		struct virtio_blk_stats bs = {0};
		if (m->dev.blk[i])
			virtio_blk_get_stats(m->dev.blk[i], &bs);
		jappend(buf, len, &off,
			"%s{\"reads\":%llu,\"writes\":%llu,\"flushes\":%llu,\"read_bytes\":%llu,"
			"\"write_bytes\":%llu,\"errors\":%llu,\"merges\":%llu,"
			"\"merged_requests\":%llu}",
			i ? "," : "", (unsigned long long)bs.reads, (unsigned long long)bs.writes,
			(unsigned long long)bs.flushes, (unsigned long long)bs.read_bytes,
			(unsigned long long)bs.write_bytes, (unsigned long long)bs.errors,
			(unsigned long long)bs.merges, (unsigned long long)bs.merged_reqs);
	}
	jappend(buf, len, &off,
		"],\"io_threads\":%u,\"io_poll_us\":%u,\"io_loops\":[{\"thread\":\"main\","
		"\"events\":%llu}",
		m->cfg.io_threads, m->cfg.io_poll_us,
		(unsigned long long)(m->built ? evloop_dispatched(&m->loop) : 0));
	for (unsigned i = 0; i < m->nr_io_loops; i++)
		jappend(buf, len, &off, ",{\"thread\":\"%s\",\"events\":%llu}",
			m->io_loops[i].name,
			(unsigned long long)evloop_dispatched(&m->io_loops[i]));
	jappend(buf, len, &off, "],\"nics\":[");
	for (unsigned i = 0; i < m->cfg.nr_nics; i++) {
		struct virtio_net_stats ns = {0};
		unsigned pairs = 0, max_pairs = 0;
		if (m->dev.nics[i]) {
			virtio_net_get_stats(m->dev.nics[i], &ns);
			pairs = virtio_net_pairs(m->dev.nics[i], &max_pairs);
		}
		jappend(buf, len, &off,
			"%s{\"queue_pairs\":%u,\"max_queue_pairs\":%u,"
			"\"rx_packets\":%llu,\"rx_bytes\":%llu,\"rx_dropped\":%llu,"
			"\"tx_packets\":%llu,\"tx_bytes\":%llu,\"tx_dropped\":%llu}",
			i ? "," : "", pairs, max_pairs, (unsigned long long)ns.rx_packets,
			(unsigned long long)ns.rx_bytes, (unsigned long long)ns.rx_dropped,
			(unsigned long long)ns.tx_packets, (unsigned long long)ns.tx_bytes,
			(unsigned long long)ns.tx_dropped);
	}
	jappend(buf, len, &off, "]}");
	return (int)off;
}
