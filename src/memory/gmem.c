/* SPDX-License-Identifier: MIT */
#include "memory/gmem.h"
#include "memory/layout.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#define GMEM_SMALL_PAGE_PREFIX (2ULL << 20)

/* Back the RAM: private anonymous memory by default, a memfd mapped shared with GMEM_SHARED. */
static int gmem_map(uint64_t ram_size, unsigned flags, int *fd_out, void **map_out)
{
	int fd = -1;
	void *p;
	*fd_out = -1;
	if (flags & GMEM_SHARED) {
		fd = memfd_create("vireo-ram", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)ram_size) < 0)
			goto fail;
		p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	} else {
		p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	}
	if (p == MAP_FAILED)
		goto fail;
	/* Transparent huge pages: anonymous memory gets them wherever THP is "always" or
	 * "madvise" (most hosts); a memfd only where shmem_enabled allows. Huge pages mean
	 * fewer faults, fewer EPT/NPT misses, and one host I/O segment per 2 MiB of a guest
	 * buffer instead of one per 4 KiB page.
	 * The first 2 MiB stay small pages: they hold the boot structures (boot_params, ACPI and
	 * MP tables, page tables of tiny guests) that a guest touches sparsely, and a huge page
	 * there would cost every VM 2 MiB of RSS for a few KiB of data. */
	if (ram_size > GMEM_SMALL_PAGE_PREFIX)
		(void)madvise((uint8_t *)p + GMEM_SMALL_PAGE_PREFIX,
			      ram_size - GMEM_SMALL_PAGE_PREFIX, MADV_HUGEPAGE);
	*fd_out = fd;
	*map_out = p;
	return 0;
fail:;
	int r = -errno;
	if (fd >= 0)
		close(fd);
	return r;
}

int gmem_create(struct gmem *m, uint64_t ram_size, unsigned flags)
{
	int fd = -1;
	void *p = NULL;
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (ram_size == 0 || (ram_size & 0xfff) || (flags & ~GMEM_SHARED))
		return -EINVAL;
	if (ram_size > (1ULL << 46))
		return -E2BIG;
	int r = gmem_map(ram_size, flags, &fd, &p);
	if (r)
		return r;
	m->fd = fd;
	m->map = p;
	m->map_size = ram_size;
	m->ram_size = ram_size;
	uint64_t low = MIN(ram_size, LAYOUT_MMIO_HOLE_START);
	m->regions[0] = (struct gmem_region){.gpa = 0, .size = low, .hva = p, .fd_offset = 0};
	m->nr_regions = 1;
	if (ram_size > low) {
		m->regions[1] = (struct gmem_region){.gpa = LAYOUT_HIGH_MEM_START,
						     .size = ram_size - low,
						     .hva = (uint8_t *)p + low,
						     .fd_offset = low};
		m->nr_regions = 2;
	}
	return 0;
}

int gmem_init_fake(struct gmem *m, uint64_t gpa, void *buf, uint64_t size)
{
	uint64_t end;
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (!buf || !size || add_overflows(gpa, size, &end))
		return -EINVAL;
	m->regions[0] = (struct gmem_region){.gpa = gpa, .size = size, .hva = buf};
	m->nr_regions = 1;
	m->ram_size = size;
	return 0;
}

void gmem_destroy(struct gmem *m)
{
	if (m->map)
		munmap(m->map, m->map_size);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct gmem_region *r = &m->regions[i];
		uint64_t end;
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		/* gpa is inside r: check the end without overflow. */
		if (add_overflows(gpa - r->gpa, len, &end) || end > r->size)
			return NULL;
		return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

uint64_t gmem_low_size(const struct gmem *m)
{
	return m->nr_regions ? m->regions[0].size : 0;
}

uint64_t gmem_high_size(const struct gmem *m)
{
	return m->nr_regions > 1 ? m->regions[1].size : 0;
}
