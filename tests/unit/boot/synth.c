/* SPDX-License-Identifier: MIT */
#include "synth.h"

#include "boot/bootproto.h"

struct synth_bz synth_bz_defaults(void)
{
	return (struct synth_bz){
	    .version = 0x020f,
	    .setup_sects = 4,
	    .pm_size = 64 * 1024,
	    .relocatable = 1,
	    .kernel_alignment = 2 << 20,
	    .pref_address = 16 << 20,
	    .init_size = 1 << 20,
	    .cmdline_size = 2047,
	    .initrd_addr_max = 0x7fffffff,
	    .xloadflags = XLF_KERNEL_64,
	    .loadflags = LOADFLAG_LOADED_HIGH,
	};
}

uint8_t synth_pm_byte(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

size_t synth_bzimage(uint8_t *buf, size_t cap, const struct synth_bz *o)
{
	size_t sects = o->setup_sects ? o->setup_sects : 4;
	size_t pm_off = (sects + 1) * 512;
	size_t len = pm_off + o->pm_size;
	if (len > cap)
		return 0;
	memset(buf, 0, len);
	/* Setup code after the header: must not reach the zero page. */
	memset(buf + 0x26c, 0x90, pm_off - 0x26c);
	buf[0x1f1] = o->setup_sects;
	synth_put32(buf, 0x1f4, (o->pm_size + 15) / 16);
	synth_put16(buf, 0x1fa, 0xffff); /* vid_mode */
	synth_put16(buf, 0x1fe, 0xaa55);
	buf[0x200] = 0xeb;
	buf[0x201] = 0x26c - 0x202;
	synth_put32(buf, 0x202, SETUP_HDR_MAGIC);
	synth_put16(buf, 0x206, o->version);
	buf[0x211] = o->loadflags;
	synth_put32(buf, 0x214, 0x100000);
	synth_put32(buf, 0x22c, o->initrd_addr_max);
	synth_put32(buf, 0x230, o->kernel_alignment);
	buf[0x234] = o->relocatable;
	buf[0x235] = 21; /* min_alignment */
	synth_put16(buf, 0x236, o->xloadflags);
	synth_put32(buf, 0x238, o->cmdline_size);
	synth_put64(buf, 0x258, o->pref_address);
	synth_put32(buf, 0x260, o->init_size);
	synth_put32(buf, 0x264, 0x190); /* handover_offset */
	for (size_t i = 0; i < o->pm_size; i++)
		buf[pm_off + i] = synth_pm_byte(i);
	return len;
}

struct synth_elf synth_elf_defaults(void)
{
	return (struct synth_elf){
	    .nseg = 2,
	    .seg = {{.paddr = 0x100000, .filesz = 0x3000, .memsz = 0x3000},
		    {.paddr = 0x200000, .filesz = 0x800, .memsz = 0x5000}},
	    .entry = 0x100040,
	    .note = SYNTH_NOTE_PHDR,
	    .descsz = 4,
	};
}

uint8_t synth_seg_byte(unsigned seg, size_t i)
{
	return (uint8_t)(seg * 31 + i * 13 + 1);
}

uint64_t synth_elf_seg_offset(const struct synth_elf *o, unsigned i)
{
	uint64_t off = SYNTH_ELF_DATA_OFF;
	for (unsigned k = 0; k < i; k++)
		off = (off + o->seg[k].filesz + 15) & ~15ULL;
	return off;
}

size_t synth_elf(uint8_t *buf, size_t cap, const struct synth_elf *o)
{
	size_t len = synth_elf_seg_offset(o, o->nseg);
	if (len > cap || o->nseg > SYNTH_MAX_SEGS)
		return 0;
	memset(buf, 0, len);
	unsigned note_ph = o->note == SYNTH_NOTE_PHDR;
	struct elf64_ehdr eh = {
	    .e_ident = {0x7f, 'E', 'L', 'F', ELF_CLASS64, ELF_DATA2LSB, 1},
	    .e_type = ELF_ET_EXEC,
	    .e_machine = ELF_EM_X86_64,
	    .e_version = 1,
	    .e_entry = 0xffffffff81000000ULL,
	    .e_phoff = SYNTH_ELF_PHOFF,
	    .e_shoff = o->note == SYNTH_NOTE_SHDR ? SYNTH_ELF_SHOFF : 0,
	    .e_ehsize = sizeof(struct elf64_ehdr),
	    .e_phentsize = sizeof(struct elf64_phdr),
	    .e_phnum = (uint16_t)(o->nseg + note_ph + 1),
	    .e_shentsize = sizeof(struct elf64_shdr),
	    .e_shnum = o->note == SYNTH_NOTE_SHDR ? 2 : 0,
	};
	memcpy(buf, &eh, sizeof(eh));

	uint64_t phoff = SYNTH_ELF_PHOFF;
	for (unsigned i = 0; i < o->nseg; i++) {
		uint64_t off = synth_elf_seg_offset(o, i);
		struct elf64_phdr ph = {
		    .p_type = ELF_PT_LOAD,
		    .p_flags = 7,
		    .p_offset = off,
		    .p_vaddr = o->seg[i].paddr + 0xffffffff80000000ULL,
		    .p_paddr = o->seg[i].paddr,
		    .p_filesz = o->seg[i].filesz,
		    .p_memsz = o->seg[i].memsz,
		    .p_align = 0x1000,
		};
		memcpy(buf + phoff, &ph, sizeof(ph));
		phoff += sizeof(ph);
		for (uint64_t k = 0; k < o->seg[i].filesz; k++)
			buf[off + k] = synth_seg_byte(i, k);
	}
	uint32_t note_size = 12 + 4 + o->descsz;
	if (note_ph) {
		struct elf64_phdr ph = {.p_type = ELF_PT_NOTE,
					.p_offset = SYNTH_ELF_NOTE_OFF,
					.p_filesz = note_size,
					.p_memsz = note_size,
					.p_align = 4};
		memcpy(buf + phoff, &ph, sizeof(ph));
		phoff += sizeof(ph);
	}
	struct elf64_phdr stack = {.p_type = 0x6474e551, .p_flags = 6};
	memcpy(buf + phoff, &stack, sizeof(stack));

	if (o->note != SYNTH_NOTE_NONE) {
		size_t n = SYNTH_ELF_NOTE_OFF;
		synth_put32(buf, n, 4);
		synth_put32(buf, n + 4, o->descsz);
		synth_put32(buf, n + 8, XEN_ELFNOTE_PHYS32_ENTRY);
		memcpy(buf + n + 12, "Xen", 4);
		if (o->descsz == 8)
			synth_put64(buf, n + 16, o->entry);
		else
			synth_put32(buf, n + 16, (uint32_t)o->entry);
	}
	if (o->note == SYNTH_NOTE_SHDR) {
		struct elf64_shdr sh = {.sh_type = ELF_SHT_NOTE,
					.sh_offset = SYNTH_ELF_NOTE_OFF,
					.sh_size = note_size,
					.sh_addralign = 4};
		memcpy(buf + SYNTH_ELF_SHOFF + sizeof(sh), &sh, sizeof(sh));
	}
	return len;
}
