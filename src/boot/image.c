/* SPDX-License-Identifier: MIT */
/*
 * Kernel image parsing (bzImage and PVH ELF). Pure: reads only buf[0, len). Every offset and
 * size read from the image is checked against len with overflow-safe arithmetic before use;
 * the image is attacker-controlled as far as this file is concerned (it is fuzzed).
 */
#include "boot/boot.h"
#include "boot/boot_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int boot_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

#define BAD(...) boot_errf(err, errlen, -ENOEXEC, __VA_ARGS__)

static const uint8_t elf_magic[4] = {0x7f, 'E', 'L', 'F'};

/* True when [off, off + size) lies inside a buffer of len bytes. */
static bool in_file(uint64_t off, uint64_t size, size_t len)
{
	uint64_t end;
	return !add_overflows(off, size, &end) && end <= len;
}

/* ---- bzImage ------------------------------------------------------------------------------ */

/* Setup header bytes needed (from 0x1f1) to read every field a protocol version has that we use. */
static uint64_t bz_hdr_needed(uint16_t version)
{
	if (version >= BOOTPROTO_PREF_ADDRESS)
		return offsetof(struct setup_header, init_size) + 4;
	return offsetof(struct setup_header, cmdline_size) + 4;
}

static int bz_parse(const uint8_t *buf, size_t len, struct kernel_image *out, char *err,
		    size_t errlen)
{
	struct setup_header h;
	memset(&h, 0, sizeof(h));
	/* The caller checked that the magic at 0x202 is inside the file. */
	memcpy(&h, buf + SETUP_HDR_OFFSET, MIN(sizeof(h), len - SETUP_HDR_OFFSET));

	/* The header ends at 0x202 + the jump's displacement byte (at 0x201). */
	uint64_t hdr_end = 0x202 + (uint64_t)buf[0x201];
	if (hdr_end > len)
		return BAD("truncated bzImage: setup header ends at 0x%llx, file has %zu bytes",
			   (unsigned long long)hdr_end, len);
	unsigned major = h.version >> 8, minor = h.version & 0xff;
	if (h.version < BOOTPROTO_MIN)
		return BAD("bzImage boot protocol %u.%02u is too old (need 2.06 or later)", major,
			   minor);
	if (h.boot_flag != SETUP_BOOT_FLAG)
		return BAD("bzImage boot sector signature is 0x%04x, not 0xaa55", h.boot_flag);
	uint64_t hdr_len = MIN(hdr_end, (uint64_t)ZERO_PAGE_SETUP_MAX) - SETUP_HDR_OFFSET;
	if (hdr_len < bz_hdr_needed(h.version))
		return BAD("bzImage setup header too short (%llu bytes) for boot protocol %u.%02u",
			   (unsigned long long)hdr_len, major, minor);
	/* Fields beyond the declared header are not the kernel's: do not trust them. */
	if (hdr_len < sizeof(h))
		memset((uint8_t *)&h + hdr_len, 0, sizeof(h) - hdr_len);

	if (!(h.loadflags & LOADFLAG_LOADED_HIGH))
		return BAD("zImage (not loaded high) is not supported, only bzImage");
	if (h.version < BOOTPROTO_XLOADFLAGS)
		return BAD("bzImage boot protocol %u.%02u has no 64-bit entry (need 2.12 or later)",
			   major, minor);
	if (!(h.xloadflags & XLF_KERNEL_64))
		return BAD("bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)");

	unsigned sects = h.setup_sects ? h.setup_sects : SETUP_SECTS_DEFAULT;
	uint64_t pm_offset = (uint64_t)(sects + 1) * SETUP_SECT_SIZE;
	if (pm_offset >= len)
		return BAD("truncated bzImage: setup code ends at 0x%llx, file has %zu bytes",
			   (unsigned long long)pm_offset, len);
	uint64_t pm_size = len - pm_offset;
	if (h.syssize == 0)
		return BAD("bzImage declares an empty protected-mode kernel (syssize 0)");
	/* syssize is rounded up to 16 bytes, and the last paragraph may be absent from the file. */
	uint64_t pm_need = (uint64_t)h.syssize * 16;
	if (pm_need > ALIGN_UP(pm_size, 16))
		return BAD("truncated bzImage: kernel needs %llu bytes after the setup code, file "
			   "has %llu",
			   (unsigned long long)pm_need, (unsigned long long)pm_size);

	bool reloc = h.relocatable_kernel != 0;
	if (reloc && (h.kernel_alignment < 0x1000 || h.kernel_alignment > (1U << 30) ||
		      (h.kernel_alignment & (h.kernel_alignment - 1))))
		return BAD("bzImage kernel_alignment 0x%x is not a power of two in [4 KiB, 1 GiB]",
			   h.kernel_alignment);
	uint64_t pref = 0x100000;
	if (h.version >= BOOTPROTO_PREF_ADDRESS && h.pref_address)
		pref = h.pref_address;

	out->kind = KERNEL_BZIMAGE;
	out->bz.version = h.version;
	out->bz.loadflags = h.loadflags;
	out->bz.xloadflags = h.xloadflags;
	out->bz.setup_sects = sects;
	out->bz.syssize = h.syssize;
	out->bz.relocatable = reloc;
	out->bz.kernel_alignment = h.kernel_alignment;
	out->bz.pref_address = pref;
	out->bz.init_size = h.version >= BOOTPROTO_PREF_ADDRESS ? h.init_size : 0;
	out->bz.cmdline_size = h.cmdline_size;
	out->bz.initrd_addr_max = h.initrd_addr_max;
	out->bz.setup_hdr_len = hdr_len;
	out->bz.pm_offset = pm_offset;
	out->bz.pm_size = pm_size;
	return 0;
}

/* ---- ELF ---------------------------------------------------------------------------------- */

/*
 * Scan the notes in buf[off, off + size) for XEN_ELFNOTE_PHYS32_ENTRY. Returns 1 and sets
 * *entry when found, 0 when absent, -ENOEXEC (with err) when the notes are malformed.
 */
static int elf_scan_notes(const uint8_t *buf, size_t len, uint64_t off, uint64_t size,
			  uint64_t align, uint32_t *entry, char *err, size_t errlen)
{
	if (!in_file(off, size, len))
		return BAD("truncated ELF: note area 0x%llx+0x%llx is beyond the end of the file "
			   "(%zu bytes)",
			   (unsigned long long)off, (unsigned long long)size, len);
	align = align == 8 ? 8 : 4;
	uint64_t pos = off, end = off + size;
	while (end - pos >= sizeof(struct elf64_nhdr)) {
		struct elf64_nhdr nh;
		memcpy(&nh, buf + pos, sizeof(nh));
		/* namesz/descsz are 32-bit, so none of these sums can overflow 64 bits. */
		uint64_t name = pos + sizeof(nh);
		uint64_t desc = name + ALIGN_UP((uint64_t)nh.n_namesz, align);
		uint64_t next = desc + ALIGN_UP((uint64_t)nh.n_descsz, align);
		if (desc > end || desc + nh.n_descsz > end)
			return BAD(
			    "malformed ELF note at offset 0x%llx: it runs past its note area",
			    (unsigned long long)pos);
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    memcmp(buf + name, "Xen", 4) == 0) {
			uint64_t v;
			if (nh.n_descsz == 4) {
				uint32_t v32;
				memcpy(&v32, buf + desc, 4);
				v = v32;
			} else if (nh.n_descsz == 8) {
				/* Linux widens the field with .quad; the value is still 32-bit. */
				memcpy(&v, buf + desc, 8);
			} else {
				return BAD("PVH entry note has a %u-byte value (expected 4 or 8)",
					   nh.n_descsz);
			}
			if (v > UINT32_MAX)
				return BAD("PVH entry note value 0x%llx does not fit in 32 bits",
					   (unsigned long long)v);
			*entry = (uint32_t)v;
			return 1;
		}
		if (next >= end)
			break;
		pos = next;
	}
	return 0;
}

/* Look for the PVH note in SHT_NOTE sections (for images without PT_NOTE). */
static int elf_scan_sections(const uint8_t *buf, size_t len, const struct elf64_ehdr *eh,
			     uint32_t *entry, char *err, size_t errlen)
{
	if (eh->e_shnum == 0 || eh->e_shoff == 0)
		return 0;
	if (eh->e_shentsize != sizeof(struct elf64_shdr))
		return BAD("ELF section header size is %u, expected %zu", eh->e_shentsize,
			   sizeof(struct elf64_shdr));
	if (!in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(struct elf64_shdr), len))
		return BAD(
		    "truncated ELF: section headers at 0x%llx are beyond the end of the file",
		    (unsigned long long)eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		struct elf64_shdr sh;
		memcpy(&sh, buf + eh->e_shoff + (uint64_t)i * sizeof(sh), sizeof(sh));
		if (sh.sh_type != ELF_SHT_NOTE)
			continue;
		int r = elf_scan_notes(buf, len, sh.sh_offset, sh.sh_size, sh.sh_addralign, entry,
				       err, errlen);
		if (r)
			return r;
	}
	return 0;
}

static void elf_sort_segments(struct kernel_segment *s, unsigned n)
{
	for (unsigned i = 1; i < n; i++) {
		struct kernel_segment t = s[i];
		unsigned j = i;
		for (; j > 0 && s[j - 1].paddr > t.paddr; j--)
			s[j] = s[j - 1];
		s[j] = t;
	}
}

static int elf_parse(const uint8_t *buf, size_t len, struct kernel_image *out, char *err,
		     size_t errlen)
{
	struct elf64_ehdr eh;
	if (len < sizeof(eh))
		return BAD("truncated ELF: %zu bytes is shorter than the ELF header", len);
	memcpy(&eh, buf, sizeof(eh));
	if (eh.e_ident[4] != ELF_CLASS64)
		return BAD("ELF kernel is not 64-bit (class %u)", eh.e_ident[4]);
	if (eh.e_ident[5] != ELF_DATA2LSB)
		return BAD("ELF kernel is not little-endian");
	if (eh.e_machine != ELF_EM_X86_64)
		return BAD("ELF kernel is not x86-64 (e_machine %u)", eh.e_machine);
	if (eh.e_type != ELF_ET_EXEC)
		return BAD("ELF kernel is not an executable (e_type %u)", eh.e_type);
	if (eh.e_phnum == 0)
		return BAD("ELF kernel has no program headers");
	if (eh.e_phnum == ELF_PN_XNUM)
		return BAD("ELF kernel uses extended program header numbering (unsupported)");
	if (eh.e_phentsize != sizeof(struct elf64_phdr))
		return BAD("ELF program header size is %u, expected %zu", eh.e_phentsize,
			   sizeof(struct elf64_phdr));
	if (!in_file(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(struct elf64_phdr), len))
		return BAD("truncated ELF: %u program headers at 0x%llx are beyond the end of the "
			   "file (%zu bytes)",
			   eh.e_phnum, (unsigned long long)eh.e_phoff, len);

	memset(out, 0, sizeof(*out));
	out->kind = KERNEL_PVH_ELF;
	uint32_t entry = 0;
	int found = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		struct elf64_phdr ph;
		memcpy(&ph, buf + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == ELF_PT_NOTE && !found) {
			found = elf_scan_notes(buf, len, ph.p_offset, ph.p_filesz, ph.p_align,
					       &entry, err, errlen);
			if (found < 0)
				return found;
			continue;
		}
		if (ph.p_type != ELF_PT_LOAD || ph.p_memsz == 0)
			continue;
		uint64_t end;
		if (ph.p_filesz > ph.p_memsz)
			return BAD("ELF segment %u: filesz 0x%llx is larger than memsz 0x%llx", i,
				   (unsigned long long)ph.p_filesz, (unsigned long long)ph.p_memsz);
		if (!in_file(ph.p_offset, ph.p_filesz, len))
			return BAD("ELF segment %u: file range 0x%llx+0x%llx is beyond the end of "
				   "the file (%zu bytes)",
				   i, (unsigned long long)ph.p_offset,
				   (unsigned long long)ph.p_filesz, len);
		if (add_overflows(ph.p_paddr, ph.p_memsz, &end))
			return BAD("ELF segment %u: address 0x%llx + size 0x%llx overflows", i,
				   (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
		if (out->elf.nr_segments == KERNEL_IMAGE_MAX_SEGMENTS)
			return BAD("ELF kernel has more than %u loadable segments",
				   KERNEL_IMAGE_MAX_SEGMENTS);
		out->elf.seg[out->elf.nr_segments++] = (struct kernel_segment){
		    .paddr = ph.p_paddr,
		    .offset = ph.p_offset,
		    .filesz = ph.p_filesz,
		    .memsz = ph.p_memsz,
		};
	}
	if (out->elf.nr_segments == 0)
		return BAD("ELF kernel has no loadable segments");
	if (!found) {
		found = elf_scan_sections(buf, len, &eh, &entry, err, errlen);
		if (found < 0)
			return found;
	}
	if (!found)
		return BAD("ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");

	struct kernel_segment *s = out->elf.seg;
	unsigned n = out->elf.nr_segments;
	elf_sort_segments(s, n);
	for (unsigned i = 0; i + 1 < n; i++) {
		if (s[i].paddr + s[i].memsz > s[i + 1].paddr)
			return BAD("ELF segments overlap: 0x%llx-0x%llx and 0x%llx-0x%llx",
				   (unsigned long long)s[i].paddr,
				   (unsigned long long)(s[i].paddr + s[i].memsz - 1),
				   (unsigned long long)s[i + 1].paddr,
				   (unsigned long long)(s[i + 1].paddr + s[i + 1].memsz - 1));
	}
	bool entry_ok = false;
	for (unsigned i = 0; i < n; i++)
		if (entry >= s[i].paddr && entry - s[i].paddr < s[i].filesz)
			entry_ok = true;
	if (!entry_ok)
		return BAD("PVH entry 0x%x is not inside the file contents of any loadable segment",
			   entry);
	out->elf.entry = entry;
	return 0;
}

int boot_image_parse(const uint8_t *buf, size_t len, struct kernel_image *out, char *err,
		     size_t errlen)
{
	uint32_t magic;
	if (err && errlen)
		err[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (!buf || len == 0)
		return BAD("empty file, not a kernel");
	if (len >= sizeof(elf_magic) && memcmp(buf, elf_magic, sizeof(elf_magic)) == 0)
		return elf_parse(buf, len, out, err, errlen);
	if (len < SETUP_HDR_FIELD(header) + sizeof(magic))
		return BAD("not a bzImage or ELF kernel (only %zu bytes)", len);
	memcpy(&magic, buf + SETUP_HDR_FIELD(header), sizeof(magic));
	if (magic != SETUP_HDR_MAGIC)
		return BAD("not a bzImage or ELF kernel (no ELF magic, no \"HdrS\" setup header)");
	return bz_parse(buf, len, out, err, errlen);
}
