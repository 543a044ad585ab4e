/* SPDX-License-Identifier: MIT */
#include "devices/legacy/acpi_pm.h"
#include "bus/bus.h"
#include "common/log.h"
#include "memory/layout.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#define ACPI_GED_EVT_ALL ACPI_GED_EVT_POWER_BUTTON

static const uint16_t acpi_pm_ports[ACPI_NR_REGS] = {
    [ACPI_REG_SLEEP_CTL] = PORT_ACPI_SLEEP_CTL,
    [ACPI_REG_SLEEP_STS] = PORT_ACPI_SLEEP_STS,
    [ACPI_REG_RESET] = PORT_ACPI_RESET,
    [ACPI_REG_GED] = PORT_ACPI_GED,
};

/* Called with the lock held. */
static void acpi_pm_update_sci(struct acpi_pm *pm)
{
	int level = pm->ged_pending != 0;

	if (level == pm->sci_level)
		return;
	int r = pm->plat->ops->irq_set_level(pm->plat->ctx, GSI_SCI, level);
	if (r < 0) {
		vlog_rl("acpi: setting SCI to %d: %s", level, strerror(-r));
		return;
	}
	pm->sci_level = level;
}

static void acpi_pm_request(struct acpi_pm *pm, enum power_req req)
{
	if (pm->power && pm->power->request)
		pm->power->request(pm->power_ctx, req);
}

static uint8_t acpi_pm_ged_take(struct acpi_pm *pm)
{
	uint8_t v;

	pthread_mutex_lock(&pm->lock);
	v = pm->ged_pending;
	pm->ged_pending = 0;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return v;
}

static void acpi_pm_sleep_write(struct acpi_pm *pm, uint8_t v)
{
	unsigned typ = (v & ACPI_SLP_TYP_MASK) >> ACPI_SLP_TYP_SHIFT;

	if (!(v & ACPI_SLP_EN))
		return;
	if (typ == ACPI_S5_SLP_TYP) {
		acpi_pm_request(pm, POWER_REQ_OFF);
		return;
	}
	vlog_rl("acpi: guest asked for unsupported sleep type %u, ignored", typ);
}

static void acpi_pm_pio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct acpi_pm_port *port = opaque;
	uint8_t *p = data;

	(void)off;
	memset(data, 0xff, len);
	if (len != 1)
		return;
	p[0] = port->reg == ACPI_REG_GED ? acpi_pm_ged_take(port->pm) : 0;
}

static void acpi_pm_pio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct acpi_pm_port *port = opaque;
	const uint8_t *p = data;

	(void)off;
	if (len != 1)
		return;
	switch (port->reg) {
	case ACPI_REG_SLEEP_CTL:
		acpi_pm_sleep_write(port->pm, p[0]);
		break;
	case ACPI_REG_RESET:
		if (p[0] == ACPI_RESET_VALUE)
			acpi_pm_request(port->pm, POWER_REQ_RESET);
		break;
	default:
		break;
	}
}

static const struct bus_ops acpi_pm_ops = {.read = acpi_pm_pio_read, .write = acpi_pm_pio_write};

int acpi_pm_init(struct acpi_pm *pm, const struct platform *plat, const struct power_ops *power,
		 void *power_ctx)
{
	int r;

	memset(pm, 0, sizeof(*pm));
	pm->plat = plat;
	pm->power = power;
	pm->power_ctx = power_ctx;
	r = -pthread_mutex_init(&pm->lock, NULL);
	if (r)
		return r;
	for (unsigned i = 0; i < ACPI_NR_REGS; i++) {
		pm->ports[i] = (struct acpi_pm_port){.pm = pm, .reg = i};
		r = bus_register(plat->pio, acpi_pm_ports[i], 1, &acpi_pm_ops, &pm->ports[i]);
		if (r) {
			acpi_pm_fini(pm);
			return r;
		}
		pm->registered |= 1u << i;
	}
	return 0;
}

void acpi_pm_fini(struct acpi_pm *pm)
{
	for (unsigned i = 0; i < ACPI_NR_REGS; i++) {
		if (!(pm->registered & (1u << i)))
			continue;
		if (bus_unregister(pm->plat->pio, acpi_pm_ports[i], &pm->ports[i]) < 0)
			vwarn("acpi: port 0x%x was not registered", acpi_pm_ports[i]);
	}
	pm->registered = 0;
	pthread_mutex_destroy(&pm->lock);
}

void acpi_pm_reset(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->ged_pending = 0;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_press_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->ged_pending |= ACPI_GED_EVT_POWER_BUTTON;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_save(struct acpi_pm *pm, struct acpi_pm_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&pm->lock);
	st->version = htole32(ACPI_PM_STATE_VERSION);
	st->ged_pending = pm->ged_pending;
	pthread_mutex_unlock(&pm->lock);
}

int acpi_pm_load(struct acpi_pm *pm, const struct acpi_pm_state *st)
{
	if (le32toh(st->version) != ACPI_PM_STATE_VERSION)
		return -EINVAL;
	if (st->ged_pending & ~ACPI_GED_EVT_ALL)
		return -EINVAL;
	pthread_mutex_lock(&pm->lock);
	pm->ged_pending = st->ged_pending;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

_Static_assert(sizeof(struct acpi_pm_state) == 8, "acpi_pm_state is a fixed-layout record");
