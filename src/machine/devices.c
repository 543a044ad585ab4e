/* SPDX-License-Identifier: MIT */
#include "machine/machine_priv.h"
#include "boot/acpi.h"
#include "boot/mptable.h"
#include "common/log.h"
#include "memory/layout.h"
#include "net/netmgr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void devices_power_request(void *ctx, enum power_req req)
{
	struct machine *m = ctx;
	machine_request_power(m, req == POWER_REQ_RESET ? MACHINE_REQ_RESET : MACHINE_REQ_OFF);
}

static const struct power_ops machine_power_ops = {.request = devices_power_request};

static void devices_console_quit(void *ctx)
{
	struct machine *m = ctx;
	vinfo("console: quit requested");
	machine_request_stop(m);
}

int machine_persist_init(struct machine *m, char *err, size_t errlen)
{
	memset(&m->persist, 0, sizeof(m->persist));
	for (unsigned i = 0; i < m->cfg.nr_disks; i++) {
		int r = blk_open(&m->persist.disk[i], &m->cfg.disks[i], NULL, err, errlen);
		if (r)
			return r;
	}
	/* On the main thread: passt's parent-death signal is tied to the forking thread. */
	for (unsigned i = 0; i < m->cfg.nr_nics; i++) {
		const struct net_config *nc = &m->cfg.nics[i];
		struct net_config bc = *nc;
		char e[256];
		int r = 0;
		/* network=NAME: a managed network (`vireo net`) names its bridge. */
		if (nc->mode == NET_MODE_BRIDGE)
			r = netmgr_resolve(nc->name, bc.name, e, sizeof(e));
		if (!r)
			r = net_backend_open(&m->persist.net_be[i], &bc, e, sizeof(e));
		if (r) {
			snprintf(err, errlen, "--net #%u: %s", i + 1, e);
			return r;
		}
		/* Default MAC: stable for a VM with a fixed --api-sock, unique per process else. */
		char id[32];
		snprintf(id, sizeof(id), "pid-%d", (int)getpid());
		if (nc->has_mac)
			memcpy(m->persist.net_mac[i], nc->mac, 6);
		else
			net_mac_default(m->persist.net_mac[i], m->cfg.api_sock ? m->cfg.api_sock : id, i);
		/* Its port: VLAN group and MAC filter (no-op for an unmanaged bridge). */
		if (nc->mode == NET_MODE_BRIDGE) {
			r = netmgr_attach_port(nc->name, m->persist.net_be[i]->ifname,
					       m->persist.net_mac[i], e, sizeof(e));
			if (r) {
				snprintf(err, errlen, "--net #%u: %s", i + 1, e);
				return r;
			}
		}
	}
	return 0;
}

void machine_persist_fini(struct machine *m)
{
	for (unsigned i = 0; i < VM_MAX_NICS; i++) {
		if (m->persist.net_be[i] && m->cfg.nics[i].mode == NET_MODE_BRIDGE)
			netmgr_detach_port(m->cfg.nics[i].name, m->persist.net_be[i]->ifname);
		net_backend_close(m->persist.net_be[i]);
	}
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		if (m->persist.disk[i])
			blk_close(m->persist.disk[i]);
	memset(&m->persist, 0, sizeof(m->persist));
}

#define ATTACH(expr, what)                                                                         \
	do {                                                                                       \
		int r__ = (expr);                                                                  \
		if (r__) {                                                                         \
			snprintf(err, errlen, "cannot create %s: %s", what, strerror(-r__));      \
			return r__;                                                                \
		}                                                                                  \
	} while (0)

int machine_devices_create(struct machine *m, char *err, size_t errlen)
{
	struct machine_devices *d = &m->dev;
	const struct platform *plat = &m->plat.plat;

	memset(d, 0, sizeof(*d));
	ATTACH(uart_init(&d->uart, plat, NULL, NULL), "COM1 UART");
	d->uart_ok = true;
	ATTACH(i8042_init(&d->kbd, plat, &machine_power_ops, m), "i8042");
	d->kbd_ok = true;
	ATTACH(cmos_rtc_init(&d->rtc, plat, NULL, NULL), "CMOS RTC");
	d->rtc_ok = true;
	cmos_rtc_set_mem_size(&d->rtc, gmem_low_size(&m->mem), gmem_high_size(&m->mem));
	if (m->persist.cmos_valid && cmos_rtc_load(&d->rtc, &m->persist.cmos))
		vwarn("CMOS: saved state not restored");
	ATTACH(post_init(&d->post, plat), "port 0x80 sink");
	d->post_ok = true;
	ATTACH(acpi_pm_init(&d->pm, plat, &machine_power_ops, m), "ACPI PM registers");
	d->pm_ok = true;
	ATTACH(pci_host_init(&d->pci, plat, LAYOUT_PCI_ECAM_START, LAYOUT_PCI_ECAM_SIZE,
			     LAYOUT_PCI_MMIO_START, LAYOUT_PCI_MMIO_SIZE),
	       "PCI host bridge");
	d->pci_ok = true;
	if (m->cfg.rng)
		ATTACH(virtio_rng_create(&d->rng, plat, &d->pci), "virtio-rng");
	for (unsigned i = 0; i < m->cfg.nr_nics; i++)
		ATTACH(virtio_net_create(&d->nics[i], plat, &d->pci, m->persist.net_be[i],
					 m->persist.net_mac[i]),
		       "virtio-net");
	for (unsigned i = 0; i < m->cfg.nr_disks; i++) {
		struct blk_backend *be = m->persist.disk[i];
		ATTACH(blk_attach_loop(be, &m->loop), "disk I/O");
		/* One request queue per vCPU. */
		ATTACH(virtio_blk_create(&d->blk[i], plat, &d->pci, be, m->cfg.cpus), "virtio-blk");
	}
	return 0;
}

int machine_devices_attach_io(struct machine *m, char *err, size_t errlen)
{
	struct machine_devices *d = &m->dev;
	if (!m->cfg.console)
		return 0;
	struct console_config cc = {
		.in_fd = STDIN_FILENO,
		.out_fd = STDOUT_FILENO,
		.escape = m->cfg.console_escape,
		.quit = devices_console_quit,
		.quit_ctx = m,
	};
	ATTACH(console_init(&d->console, &cc, &d->uart, &m->loop), "serial console");
	d->console_ok = true;
	return 0;
}

void machine_devices_destroy(struct machine *m)
{
	struct machine_devices *d = &m->dev;
	if (d->console_ok)
		console_fini(&d->console);
	if (d->pci_ok)
		pci_host_fini(&d->pci);
	if (d->rng)
		virtio_rng_destroy(d->rng);
	for (unsigned i = 0; i < VM_MAX_NICS; i++)
		virtio_net_destroy(d->nics[i]);
	for (unsigned i = 0; i < VM_MAX_DISKS; i++) {
		if (d->blk[i])
			virtio_blk_destroy(d->blk[i]);
		/* Completions go nowhere until the next boot's loop takes the disk. */
		if (m->persist.disk[i] && blk_attach_loop(m->persist.disk[i], NULL))
			vwarn("disk %u: cannot detach from the I/O loop", i);
	}
	if (d->pm_ok)
		acpi_pm_fini(&d->pm);
	if (d->post_ok)
		post_fini(&d->post);
	if (d->rtc_ok) {
		cmos_rtc_save(&d->rtc, &m->persist.cmos);
		m->persist.cmos_valid = true;
		cmos_rtc_fini(&d->rtc);
	}
	if (d->kbd_ok)
		i8042_fini(&d->kbd);
	if (d->uart_ok)
		uart_fini(&d->uart);
	memset(d, 0, sizeof(*d));
}

int machine_acpi_build(struct machine *m, uint64_t *rsdp, char *err, size_t errlen)
{
	struct acpi_config ac;
	acpi_config_default(&ac, m->cfg.cpus);
	int r = acpi_build(&m->mem, &ac, rsdp);
	if (r) {
		snprintf(err, errlen, "cannot build ACPI tables: %s", strerror(-r));
		return r;
	}
	r = mptable_build(&m->mem, m->cfg.cpus);
	if (r)
		snprintf(err, errlen, "cannot build the MP table: %s", strerror(-r));
	return r;
}

int machine_shutdown(struct machine *m)
{
	if (!m->dev.pm_ok)
		return -ENODEV;
	acpi_pm_press_power_button(&m->dev.pm);
	return 0;
}
