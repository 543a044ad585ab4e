/* SPDX-License-Identifier: MIT */
#include "bus/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
	return -pthread_rwlock_init(&b->lock, NULL);
}

void bus_fini(struct bus *b)
{
	free(b->ranges);
	b->ranges = NULL;
	b->nr = b->cap = 0;
	pthread_rwlock_destroy(&b->lock);
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque)
{
	uint64_t end;
	size_t i;
	int r = 0;

	if (!len || !ops || add_overflows(base, len - 1, &end))
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	for (i = 0; i < b->nr; i++) {
		const struct bus_range *x = &b->ranges[i];
		uint64_t xend = x->base + (x->len - 1);
		if (base <= xend && x->base <= end) {
			r = -EEXIST;
			goto out;
		}
		if (x->base > end)
			break;
	}
	if (b->nr == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 16;
		struct bus_range *n = realloc(b->ranges, ncap * sizeof(*n));
		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		b->ranges = n;
		b->cap = ncap;
	}
	memmove(&b->ranges[i + 1], &b->ranges[i], (b->nr - i) * sizeof(*b->ranges));
	b->ranges[i] = (struct bus_range){.base = base, .len = len, .ops = ops, .opaque = opaque};
	b->nr++;
out:
	pthread_rwlock_unlock(&b->lock);
	return r;
}

int bus_unregister(struct bus *b, uint64_t base, void *opaque)
{
	int r = -ENOENT;
	pthread_rwlock_wrlock(&b->lock);
	for (size_t i = 0; i < b->nr; i++) {
		if (b->ranges[i].base == base && b->ranges[i].opaque == opaque) {
			memmove(&b->ranges[i], &b->ranges[i + 1],
				(b->nr - i - 1) * sizeof(*b->ranges));
			b->nr--;
			r = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&b->lock);
	return r;
}

static bool bus_find(struct bus *b, uint64_t addr, unsigned len, struct bus_range *out)
{
	bool found = false;
	pthread_rwlock_rdlock(&b->lock);
	size_t lo = 0, hi = b->nr;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_range *x = &b->ranges[mid];
		if (addr < x->base) {
			hi = mid;
		} else if (addr - x->base >= x->len) {
			lo = mid + 1;
		} else {
			/* The whole access must fit inside the range. */
			if (len <= x->len - (addr - x->base)) {
				*out = *x;
				found = true;
			}
			break;
		}
	}
	pthread_rwlock_unlock(&b->lock);
	return found;
}

bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned len)
{
	struct bus_range r;
	if (!bus_find(b, addr, len, &r)) {
		memset(data, 0xff, len);
		return false;
	}
	if (r.ops->read)
		r.ops->read(r.opaque, addr - r.base, data, len);
	else
		memset(data, 0xff, len);
	return true;
}

bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned len)
{
	struct bus_range r;
	if (!bus_find(b, addr, len, &r))
		return false;
	if (r.ops->write)
		r.ops->write(r.opaque, addr - r.base, data, len);
	return true;
}
