/* SPDX-License-Identifier: MIT */
#include "fake_platform.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int fake_irq_set_level(void *ctx, unsigned gsi, int level)
{
	struct fake_platform *fp = ctx;
	if (gsi >= FAKE_MAX_GSI)
		return -EINVAL;
	if (level && !fp->irq_level[gsi])
		fp->irq_raises[gsi]++;
	fp->irq_level[gsi] = level;
	return 0;
}

static int fake_msi_alloc(void *ctx, unsigned *handle)
{
	struct fake_platform *fp = ctx;
	for (unsigned i = 0; i < FAKE_MAX_MSI; i++) {
		if (!fp->msi[i].used) {
			memset(&fp->msi[i], 0, sizeof(fp->msi[i]));
			fp->msi[i].used = true;
			fp->msi_allocated++;
			*handle = i;
			return 0;
		}
	}
	return -ENOSPC;
}

static int fake_msi_update(void *ctx, unsigned h, uint64_t addr, uint32_t data)
{
	struct fake_platform *fp = ctx;
	if (h >= FAKE_MAX_MSI || !fp->msi[h].used)
		return -EINVAL;
	fp->msi[h].addr = addr;
	fp->msi[h].data = data;
	return 0;
}

static int fake_msi_fire(void *ctx, unsigned h)
{
	struct fake_platform *fp = ctx;
	if (h >= FAKE_MAX_MSI || !fp->msi[h].used)
		return -EINVAL;
	__atomic_add_fetch(&fp->msi[h].fired, 1, __ATOMIC_RELAXED);
	return 0;
}

static struct evloop *fake_io_loop_next(void *ctx)
{
	struct fake_platform *fp = ctx;
	if (!fp->nr_io_loops)
		return NULL;
	return fp->io_loops[fp->io_next++ % fp->nr_io_loops];
}

static void fake_msi_free(void *ctx, unsigned h)
{
	struct fake_platform *fp = ctx;
	if (h < FAKE_MAX_MSI && fp->msi[h].used) {
		fp->msi[h].used = false;
		fp->msi_allocated--;
	}
}

static const struct platform_ops fake_ops = {
	.irq_set_level = fake_irq_set_level,
	.msi_alloc = fake_msi_alloc,
	.msi_update = fake_msi_update,
	.msi_fire = fake_msi_fire,
	.msi_free = fake_msi_free,
	.io_loop_next = fake_io_loop_next,
	/* no ioeventfd: devices must handle doorbells from the MMIO write itself */
};

void fake_platform_init(struct fake_platform *fp, uint64_t ram_gpa, uint64_t ram_size)
{
	memset(fp, 0, sizeof(*fp));
	fp->ram = calloc(1, ram_size);
	if (!fp->ram || gmem_init_fake(&fp->mem, ram_gpa, fp->ram, ram_size) ||
	    bus_init(&fp->mmio, "mmio") || bus_init(&fp->pio, "pio"))
		abort();
	fp->ram_gpa = ram_gpa;
	fp->ram_size = ram_size;
	fp->plat = (struct platform){.ops = &fake_ops,
				     .ctx = fp,
				     .mem = &fp->mem,
				     .loop = NULL,
				     .mmio = &fp->mmio,
				     .pio = &fp->pio};
}

void fake_platform_fini(struct fake_platform *fp)
{
	bus_fini(&fp->mmio);
	bus_fini(&fp->pio);
	free(fp->ram);
	memset(fp, 0, sizeof(*fp));
}
