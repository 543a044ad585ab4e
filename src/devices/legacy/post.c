/* SPDX-License-Identifier: MIT */
#include "devices/legacy/post.h"
#include "bus/bus.h"
#include "common/log.h"
#include "memory/layout.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

static void post_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	(void)opaque;
	(void)off;
	memset(data, 0xff, len);
}

static void post_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct post *p = opaque;
	const uint8_t *v = data;

	(void)off;
	if (len)
		__atomic_store_n(&p->last, v[0], __ATOMIC_RELAXED);
}

static const struct bus_ops post_ops = {.read = post_read, .write = post_write};

int post_init(struct post *p, const struct platform *plat)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->plat = plat;
	r = bus_register(plat->pio, PORT_POST, 1, &post_ops, p);
	if (r)
		return r;
	p->registered = true;
	return 0;
}

void post_fini(struct post *p)
{
	if (p->registered && bus_unregister(p->plat->pio, PORT_POST, p) < 0)
		vwarn("post: port 0x%x was not registered", PORT_POST);
	p->registered = false;
}

uint8_t post_last_code(const struct post *p)
{
	return __atomic_load_n(&p->last, __ATOMIC_RELAXED);
}

void post_save(const struct post *p, struct post_state *st)
{
	memset(st, 0, sizeof(*st));
	st->version = htole32(POST_STATE_VERSION);
	st->last = post_last_code(p);
}

int post_load(struct post *p, const struct post_state *st)
{
	if (le32toh(st->version) != POST_STATE_VERSION)
		return -EINVAL;
	__atomic_store_n(&p->last, st->last, __ATOMIC_RELAXED);
	return 0;
}

_Static_assert(sizeof(struct post_state) == 8, "post_state is a fixed-layout record");
