/* SPDX-License-Identifier: MIT */
#include "devices/legacy/i8042.h"
#include "bus/bus.h"
#include "common/log.h"
#include "memory/layout.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#define I8042_STS_CONST (I8042_STS_SYS | I8042_STS_UNLOCKED)
#define I8042_OUTPORT_DEFAULT (I8042_OUTPORT_RESET | I8042_OUTPORT_A20)

static void i8042_request_reset(struct i8042 *k)
{
	if (k->power && k->power->request)
		k->power->request(k->power_ctx, POWER_REQ_RESET);
}

/* Returns true when the command pulses the reset line. Called with the lock held. */
static bool i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->status |= I8042_STS_CMD;
	k->pending_cmd = 0;
	if ((cmd & 0xf0) == 0xf0)
		return !(cmd & 0x01); /* pulse output lines; bit 0 is the reset line */
	switch (cmd) {
	case I8042_CMD_READ_OUTPORT:
		k->outbuf = k->outport;
		k->status |= I8042_STS_OBF;
		break;
	case I8042_CMD_WRITE_OUTPORT:
		k->pending_cmd = cmd;
		break;
	default:
		break;
	}
	return false;
}

static bool i8042_data(struct i8042 *k, uint8_t v)
{
	bool reset = false;

	k->status &= (uint8_t)~I8042_STS_CMD;
	if (k->pending_cmd == I8042_CMD_WRITE_OUTPORT) {
		k->outport = v;
		reset = !(v & I8042_OUTPORT_RESET);
	}
	k->pending_cmd = 0;
	return reset;
}

static void i8042_write(struct i8042 *k, bool cmd_port, const void *data, unsigned len)
{
	const uint8_t *p = data;
	bool reset;

	if (len != 1)
		return;
	pthread_mutex_lock(&k->lock);
	reset = cmd_port ? i8042_command(k, p[0]) : i8042_data(k, p[0]);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		i8042_request_reset(k);
}

static void i8042_read(struct i8042 *k, bool cmd_port, void *data, unsigned len)
{
	uint8_t *p = data;

	memset(data, 0xff, len);
	if (len != 1)
		return;
	pthread_mutex_lock(&k->lock);
	if (cmd_port) {
		p[0] = k->status | I8042_STS_CONST;
	} else {
		p[0] = k->outbuf;
		k->status &= (uint8_t)~I8042_STS_OBF;
	}
	pthread_mutex_unlock(&k->lock);
}

static void i8042_data_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	(void)off;
	i8042_read(opaque, false, data, len);
}

static void i8042_data_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	(void)off;
	i8042_write(opaque, false, data, len);
}

static void i8042_cmd_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	(void)off;
	i8042_read(opaque, true, data, len);
}

static void i8042_cmd_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	(void)off;
	i8042_write(opaque, true, data, len);
}

static const struct bus_ops i8042_data_ops = {.read = i8042_data_read, .write = i8042_data_write};
static const struct bus_ops i8042_cmd_ops = {.read = i8042_cmd_read, .write = i8042_cmd_write};

static void i8042_state_reset(struct i8042 *k)
{
	k->status = 0;
	k->outbuf = 0;
	k->outport = I8042_OUTPORT_DEFAULT;
	k->pending_cmd = 0;
}

int i8042_init(struct i8042 *k, const struct platform *plat, const struct power_ops *power,
	       void *power_ctx)
{
	int r;

	memset(k, 0, sizeof(*k));
	k->plat = plat;
	k->power = power;
	k->power_ctx = power_ctx;
	i8042_state_reset(k);
	r = -pthread_mutex_init(&k->lock, NULL);
	if (r)
		return r;
	r = bus_register(plat->pio, PORT_I8042_DATA, 1, &i8042_data_ops, k);
	if (r)
		goto err;
	k->registered_data = true;
	r = bus_register(plat->pio, PORT_I8042_CMD, 1, &i8042_cmd_ops, k);
	if (r)
		goto err;
	k->registered_cmd = true;
	return 0;
err:
	i8042_fini(k);
	return r;
}

void i8042_fini(struct i8042 *k)
{
	if (k->registered_data && bus_unregister(k->plat->pio, PORT_I8042_DATA, k) < 0)
		vwarn("i8042: data port was not registered");
	if (k->registered_cmd && bus_unregister(k->plat->pio, PORT_I8042_CMD, k) < 0)
		vwarn("i8042: command port was not registered");
	k->registered_data = k->registered_cmd = false;
	pthread_mutex_destroy(&k->lock);
}

void i8042_reset(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	i8042_state_reset(k);
	pthread_mutex_unlock(&k->lock);
}

void i8042_save(struct i8042 *k, struct i8042_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&k->lock);
	st->version = htole32(I8042_STATE_VERSION);
	st->status = k->status;
	st->outbuf = k->outbuf;
	st->outport = k->outport;
	st->pending_cmd = k->pending_cmd;
	pthread_mutex_unlock(&k->lock);
}

int i8042_load(struct i8042 *k, const struct i8042_state *st)
{
	if (le32toh(st->version) != I8042_STATE_VERSION)
		return -EINVAL;
	if ((st->status & ~(I8042_STS_OBF | I8042_STS_CMD)) ||
	    (st->pending_cmd != 0 && st->pending_cmd != I8042_CMD_WRITE_OUTPORT))
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	k->status = st->status;
	k->outbuf = st->outbuf;
	k->outport = st->outport;
	k->pending_cmd = st->pending_cmd;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

_Static_assert(sizeof(struct i8042_state) == 8, "i8042_state is a fixed-layout record");
