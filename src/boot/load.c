/* SPDX-License-Identifier: MIT */
/*
 * Placing a parsed kernel, its initrd and command line into guest memory, and the boot data
 * each protocol wants: the zero page (bzImage, 64-bit entry) or hvm_start_info (PVH, 32-bit
 * entry). boot_load() adds file handling on top of the in-memory core.
 */
#include "boot/boot.h"
#include "boot/boot_priv.h"
#include "memory/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define PAGE_SIZE_4K 0x1000ULL
#define FOUR_GIB 0x100000000ULL
#define PVH_MEMMAP_MAX                                                                             \
	((LAYOUT_PVH_MODLIST - LAYOUT_PVH_MEMMAP) / sizeof(struct hvm_memmap_table_entry))

_Static_assert(LAYOUT_PVH_INFO + sizeof(struct hvm_start_info) <= LAYOUT_PVH_MEMMAP,
	       "start_info runs into the memmap");
_Static_assert(LAYOUT_PVH_MODLIST + sizeof(struct hvm_modlist_entry) <= LAYOUT_ZERO_PAGE,
	       "modlist runs into the zero page");
_Static_assert(LAYOUT_ZERO_PAGE + sizeof(struct boot_params) <= LAYOUT_PML4, "zero page size");

/* Where the initrd comes from: a buffer, or an open file read straight into guest memory. */
struct initrd_src {
	const char *name;
	const uint8_t *buf; /* NULL: read size bytes from fd */
	int fd;
	uint64_t size; /* 0: no initrd */
};

/* Everything a protocol loader needs besides the image. */
struct load_ctx {
	const struct gmem *m;
	const uint8_t *kbuf;
	const char *kname;
	const struct initrd_src *rd;
	const char *cmdline;
	size_t cmdlen;
	uint64_t rsdp;
	uint64_t low_end; /* end of the RAM region holding 1 MiB, capped at 4 GiB */
	struct e820_entry e820[ZERO_PAGE_E820_MAX];
	unsigned e820_n;
	char *err;
	size_t errlen;
};

#define FAIL(code, ...) boot_errf(c->err, c->errlen, (code), __VA_ARGS__)

static uint64_t low_ram_end(const struct gmem *m)
{
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct gmem_region *g = &m->regions[i];
		if (g->gpa <= LAYOUT_HIGH_RAM_START && LAYOUT_HIGH_RAM_START - g->gpa < g->size)
			return MIN(g->gpa + g->size, FOUR_GIB); /* gmem checked g->gpa + size */
	}
	return 0;
}

/* Read exactly len bytes at offset 0; -EIO when the file is shorter. */
static int read_full(int fd, void *dst, uint64_t len)
{
	uint8_t *p = dst;
	uint64_t done = 0;
	while (done < len) {
		size_t chunk = (size_t)MIN(len - done, (uint64_t)1 << 30);
		ssize_t n = pread(fd, p + done, chunk, (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

/*
 * Put the initrd at the highest page-aligned address below top (and below the end of low RAM)
 * that stays above kernel_end, and copy it there. *addr = 0 when there is no initrd.
 */
static int initrd_load(struct load_ctx *c, uint64_t kernel_end, uint64_t top, uint64_t *addr)
{
	const struct initrd_src *rd = c->rd;
	*addr = 0;
	if (!rd || rd->size == 0)
		return 0;
	top = MIN(top, c->low_end);
	if (rd->size > top || ALIGN_DOWN(top - rd->size, PAGE_SIZE_4K) < kernel_end)
		return FAIL(-ENOSPC, "initrd '%s' (%llu MiB) does not fit in guest memory",
			    rd->name, boot_mib(rd->size));
	uint64_t a = ALIGN_DOWN(top - rd->size, PAGE_SIZE_4K);
	void *dst = gmem_ptr(c->m, a, rd->size);
	if (!dst)
		return FAIL(-ENOSPC, "initrd '%s' (%llu MiB) does not fit in guest memory",
			    rd->name, boot_mib(rd->size));
	if (rd->buf) {
		memcpy(dst, rd->buf, rd->size);
	} else {
		int r = read_full(rd->fd, dst, rd->size);
		if (r == -EIO)
			return FAIL(r, "initrd '%s': file shrank while being read", rd->name);
		if (r)
			return FAIL(r, "initrd '%s': read error: %s", rd->name, strerror(-r));
	}
	*addr = a;
	return 0;
}

static int write_cmdline(struct load_ctx *c)
{
	if (gmem_write(c->m, LAYOUT_CMDLINE, c->cmdline, c->cmdlen + 1))
		return FAIL(-EFAULT, "no guest RAM for the command line at 0x%llx", LAYOUT_CMDLINE);
	return 0;
}

static int write_gdt(struct load_ctx *c)
{
	if (boot_gdt_write(c->m))
		return FAIL(-EFAULT, "no guest RAM for the GDT at 0x%llx", LAYOUT_GDT);
	return 0;
}

/* ---- bzImage ------------------------------------------------------------------------------ */

static int bz_load(struct load_ctx *c, const struct kernel_image *img, struct boot_entry *out)
{
	uint64_t load, need, kend;
	if (img->bz.relocatable)
		load = ALIGN_UP(LAYOUT_KERNEL_DEFAULT, (uint64_t)img->bz.kernel_alignment);
	else
		load = img->bz.pref_address;
	need = MAX(img->bz.pm_size, (uint64_t)img->bz.init_size);
	if (load < LAYOUT_HIGH_RAM_START)
		return FAIL(-EINVAL, "kernel '%s': load address 0x%llx is below 1 MiB", c->kname,
			    (unsigned long long)load);
	if (add_overflows(load, need, &kend) || kend > c->low_end || !gmem_ptr(c->m, load, need))
		return FAIL(-ENOSPC,
			    "kernel '%s': needs %llu MiB at 0x%llx, beyond guest RAM (%llu MiB "
			    "below 4 GiB)",
			    c->kname, boot_mib(need), (unsigned long long)load,
			    boot_mib(c->low_end));
	if (c->cmdlen > img->bz.cmdline_size)
		return FAIL(-E2BIG, "command line is too long (%zu bytes, the kernel accepts %u)",
			    c->cmdlen, img->bz.cmdline_size);

	/* initrd_addr_max is the highest byte the initrd may occupy. */
	uint64_t initrd_addr;
	int r = initrd_load(c, kend, (uint64_t)img->bz.initrd_addr_max + 1, &initrd_addr);
	if (r)
		return r;
	if (gmem_write(c->m, load, c->kbuf + img->bz.pm_offset, img->bz.pm_size))
		return FAIL(-EFAULT, "kernel '%s': cannot copy to 0x%llx", c->kname,
			    (unsigned long long)load);

	struct boot_params *bp = gmem_ptr(c->m, LAYOUT_ZERO_PAGE, sizeof(*bp));
	if (!bp)
		return FAIL(-EFAULT, "no guest RAM for the zero page at 0x%llx", LAYOUT_ZERO_PAGE);
	memset(bp, 0, sizeof(*bp));
	memcpy((uint8_t *)bp + SETUP_HDR_OFFSET, c->kbuf + SETUP_HDR_OFFSET, img->bz.setup_hdr_len);
	bp->hdr.type_of_loader = BOOT_LOADER_UNDEFINED;
	bp->hdr.code32_start = (uint32_t)load;
	bp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	bp->hdr.ramdisk_image = (uint32_t)initrd_addr; /* below 4 GiB: ext_* stay 0 */
	bp->hdr.ramdisk_size = initrd_addr ? (uint32_t)c->rd->size : 0;
	if (img->bz.version >= BOOTPROTO_ACPI_RSDP)
		bp->acpi_rsdp_addr = c->rsdp;
	bp->e820_entries = (uint8_t)c->e820_n;
	memcpy(bp->e820_table, c->e820, c->e820_n * sizeof(c->e820[0]));

	r = write_cmdline(c);
	if (!r)
		r = write_gdt(c);
	if (r)
		return r;
	if (boot_pagetables_write(c->m))
		return FAIL(-EFAULT, "no guest RAM for the page tables at 0x%llx", LAYOUT_PML4);

	boot_entry_init_cpu(out, BOOT_MODE_LONG64);
	out->rip = load + BOOT_ENTRY64_OFFSET;
	out->rsi = LAYOUT_ZERO_PAGE;
	out->rsp = LAYOUT_BOOT_STACK;
	return 0;
}

/* ---- PVH ELF ------------------------------------------------------------------------------ */

static int pvh_load(struct load_ctx *c, const struct kernel_image *img, struct boot_entry *out)
{
	uint64_t kend = LAYOUT_HIGH_RAM_START;
	for (unsigned i = 0; i < img->elf.nr_segments; i++) {
		const struct kernel_segment *s = &img->elf.seg[i];
		uint64_t end = s->paddr + s->memsz; /* parse checked the overflow */
		if (s->paddr < LAYOUT_HIGH_RAM_START)
			return FAIL(
			    -EINVAL,
			    "kernel '%s': segment at 0x%llx overlaps the boot data below 1 MiB",
			    c->kname, (unsigned long long)s->paddr);
		uint8_t *dst = gmem_ptr(c->m, s->paddr, s->memsz);
		if (!dst || end > c->low_end)
			return FAIL(
			    -ENOSPC,
			    "kernel '%s': segment 0x%llx-0x%llx is beyond guest RAM (%llu MiB "
			    "below 4 GiB)",
			    c->kname, (unsigned long long)s->paddr, (unsigned long long)(end - 1),
			    boot_mib(c->low_end));
		kend = MAX(kend, end);
	}
	if (c->e820_n > PVH_MEMMAP_MAX)
		return FAIL(-ENOSPC, "memory map has %u entries, PVH room for %zu", c->e820_n,
			    (size_t)PVH_MEMMAP_MAX);
	uint64_t initrd_addr;
	int r = initrd_load(c, kend, FOUR_GIB, &initrd_addr);
	if (r)
		return r;
	for (unsigned i = 0; i < img->elf.nr_segments; i++) {
		const struct kernel_segment *s = &img->elf.seg[i];
		uint8_t *dst = gmem_ptr(c->m, s->paddr, s->memsz);
		memcpy(dst, c->kbuf + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}

	struct hvm_memmap_table_entry mm[PVH_MEMMAP_MAX];
	for (unsigned i = 0; i < c->e820_n; i++)
		mm[i] = (struct hvm_memmap_table_entry){
		    .addr = c->e820[i].addr, .size = c->e820[i].size, .type = c->e820[i].type};
	struct hvm_start_info si = {
	    .magic = HVM_START_MAGIC,
	    .version = HVM_START_VERSION,
	    .cmdline_paddr = LAYOUT_CMDLINE,
	    .rsdp_paddr = c->rsdp,
	    .memmap_paddr = LAYOUT_PVH_MEMMAP,
	    .memmap_entries = c->e820_n,
	};
	if (initrd_addr) {
		struct hvm_modlist_entry mod = {.paddr = initrd_addr, .size = c->rd->size};
		if (gmem_write(c->m, LAYOUT_PVH_MODLIST, &mod, sizeof(mod)))
			return FAIL(-EFAULT, "no guest RAM for the PVH module list");
		si.nr_modules = 1;
		si.modlist_paddr = LAYOUT_PVH_MODLIST;
	}
	if (gmem_write(c->m, LAYOUT_PVH_MEMMAP, mm, c->e820_n * sizeof(mm[0])) ||
	    gmem_write(c->m, LAYOUT_PVH_INFO, &si, sizeof(si)))
		return FAIL(-EFAULT, "no guest RAM for the PVH start info at 0x%llx",
			    LAYOUT_PVH_INFO);
	r = write_cmdline(c);
	if (!r)
		r = write_gdt(c);
	if (r)
		return r;

	boot_entry_init_cpu(out, BOOT_MODE_PROT32);
	out->rip = img->elf.entry;
	out->rbx = LAYOUT_PVH_INFO;
	out->rsp = LAYOUT_BOOT_STACK;
	return 0;
}

/* ---- entry points ------------------------------------------------------------------------- */

static int load_core(const struct gmem *m, const uint8_t *kernel, size_t kernel_len,
		     const struct initrd_src *rd, const struct boot_params_in *in,
		     struct boot_entry *out, char *err, size_t errlen)
{
	struct load_ctx ctx = {
	    .m = m,
	    .kbuf = kernel,
	    .kname = in->kernel_path ? in->kernel_path : "(memory)",
	    .rd = rd,
	    .cmdline = in->cmdline ? in->cmdline : "",
	    .rsdp = in->rsdp_gpa,
	    .err = err,
	    .errlen = errlen,
	};
	struct load_ctx *c = &ctx;
	struct kernel_image img;
	char perr[192];

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	int r = boot_image_parse(kernel, kernel_len, &img, perr, sizeof(perr));
	if (r)
		return FAIL(r, "kernel '%s': %s", c->kname, perr);
	c->cmdlen = strlen(c->cmdline);
	if (c->cmdlen + 1 > LAYOUT_CMDLINE_MAX)
		return FAIL(-E2BIG, "command line is too long (%zu bytes, limit %llu)", c->cmdlen,
			    LAYOUT_CMDLINE_MAX - 1);
	c->low_end = low_ram_end(m);
	if (c->low_end <= LAYOUT_HIGH_RAM_START)
		return FAIL(-EINVAL, "guest memory has no RAM at 1 MiB");
	r = boot_e820_build(m, c->e820, ZERO_PAGE_E820_MAX, &c->e820_n);
	if (r)
		return FAIL(r, "cannot build the e820 memory map: %s", strerror(-r));
	if (img.kind == KERNEL_BZIMAGE)
		return bz_load(c, &img, out);
	return pvh_load(c, &img, out);
}

int boot_load_image(const struct gmem *m, const uint8_t *kernel, size_t kernel_len,
		    const uint8_t *initrd, size_t initrd_len, const struct boot_params_in *in,
		    struct boot_entry *out, char *err, size_t errlen)
{
	struct initrd_src rd = {
	    .name = in->initrd_path ? in->initrd_path : "(memory)",
	    .buf = initrd,
	    .fd = -1,
	    .size = initrd ? initrd_len : 0,
	};
	return load_core(m, kernel, kernel_len, &rd, in, out, err, errlen);
}

/* Open a regular, non-empty file of at most max bytes; *fd_out is -1 on failure. */
static int file_open(const char *what, const char *path, uint64_t max, int *fd_out,
		     uint64_t *size_out, char *err, size_t errlen)
{
	struct stat st;
	int r;
	*fd_out = -1;
	/* O_NONBLOCK: opening a FIFO must not hang; it is refused below anyway. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			return boot_errf(err, errlen, r, "%s '%s': no such file", what, path);
		return boot_errf(err, errlen, r, "%s '%s': cannot open: %s", what, path,
				 strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;
		r = boot_errf(err, errlen, -e, "%s '%s': cannot stat: %s", what, path, strerror(e));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = boot_errf(err, errlen, -EISDIR, "%s '%s': is a directory", what, path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = boot_errf(err, errlen, -EINVAL, "%s '%s': not a regular file", what, path);
		goto fail;
	}
	if (st.st_size == 0) {
		r = boot_errf(err, errlen, -ENOEXEC, "%s '%s': is empty", what, path);
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		r = boot_errf(err, errlen, -EFBIG,
			      "%s '%s': is too large (%llu MiB, limit %llu MiB)", what, path,
			      boot_mib((uint64_t)st.st_size), boot_mib(max));
		goto fail;
	}
	*fd_out = fd;
	*size_out = (uint64_t)st.st_size;
	return 0;
fail:
	close(fd);
	return r;
}

int boot_load(const struct gmem *m, const struct boot_params_in *in, struct boot_entry *out,
	      char *err, size_t errlen)
{
	struct initrd_src rd = {.name = in->initrd_path, .fd = -1};
	uint8_t *kbuf = NULL;
	uint64_t ksize = 0;
	int kfd = -1, r;

	memset(out, 0, sizeof(*out));
	if (!in->kernel_path)
		return boot_errf(err, errlen, -EINVAL, "no kernel given");
	r = file_open("kernel", in->kernel_path, BOOT_KERNEL_MAX_SIZE, &kfd, &ksize, err, errlen);
	if (r)
		return r;
	kbuf = malloc((size_t)ksize);
	if (!kbuf) {
		r = boot_errf(err, errlen, -ENOMEM, "kernel '%s': out of memory (%llu MiB)",
			      in->kernel_path, boot_mib(ksize));
		goto out;
	}
	r = read_full(kfd, kbuf, ksize);
	if (r == -EIO)
		r = boot_errf(err, errlen, r, "kernel '%s': file shrank while being read",
			      in->kernel_path);
	else if (r)
		r = boot_errf(err, errlen, r, "kernel '%s': read error: %s", in->kernel_path,
			      strerror(-r));
	if (r)
		goto out;
	if (in->initrd_path) {
		r = file_open("initrd", in->initrd_path, UINT64_MAX, &rd.fd, &rd.size, err, errlen);
		if (r)
			goto out;
	}
	r = load_core(m, kbuf, (size_t)ksize, &rd, in, out, err, errlen);
out:
	if (rd.fd >= 0)
		close(rd.fd);
	if (kfd >= 0)
		close(kfd);
	free(kbuf);
	return r;
}
