/* SPDX-License-Identifier: MIT */
/*
 * kvm-floor: the least a KVM user must do to run a guest, as the lower bound of the start/exit
 * benchmark (bench/run.sh).
 *
 * Contract:
 * - `kvm-floor [--irqchip] [--thp] [GUEST.ELF] [MEM_MIB]` opens /dev/kvm, creates a VM, one
 *   vCPU and one anonymous memslot of MEM_MIB MiB (default 256, never touched except where the
 *   guest is loaded), puts the vCPU in 32-bit flat protected mode (the PVH entry state, paging
 *   off), runs it and exits. --irqchip also creates KVM's in-kernel PIC/IOAPIC/LAPIC and PIT,
 *   as Vireo and QEMU do: their setup and, above all, their teardown at close() are a kernel
 *   cost that every VMM using them pays (HLT then no longer exits to us). --thp asks for
 *   transparent huge pages on guest RAM (madvise MADV_HUGEPAGE), as QEMU does.
 * - Without GUEST.ELF it runs a built-in stub that writes "kvm-floor\n" to port 0x3F8, then
 *   0xFE to port 0x64, and halts.
 *   With GUEST.ELF (an identity-linked ELF64 such as bench-guest) it loads every PT_LOAD segment
 *   at its physical address and enters at e_entry.
 * - Exits handled: OUT 0x3F8 (byte to stdout), IN 0x3FD (a 16550 LSR that is always ready),
 *   OUT 0x64 0xFE (i8042 reset: done), HLT (done); other port and MMIO accesses are ignored.
 *   No CPUID setup, no devices: anything more is the VMM's own cost.
 * - Exit status 0 on a clean stop, 1 on any error (message on stderr).
 */
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define STUB_GPA 0x1000u
#define MAX_EXITS 100000u

struct floor {
	int kvm, vm, vcpu;
	uint8_t *mem;
	size_t mem_size;
	struct kvm_run *run;
	size_t run_size;
};

static int fail(const char *what)
{
	fprintf(stderr, "kvm-floor: %s: %s\n", what, strerror(errno));
	return -1;
}

/* The built-in guest: mov $0x3f8,%dx; per byte of the line mov $c,%al + out %al,(%dx);
 * mov $0xfe,%al; out %al,$0x64; hlt. */
static size_t floor_stub(uint8_t *p)
{
	static const char msg[] = "kvm-floor\n";
	size_t n = 0;

	p[n++] = 0x66; /* mov $0x3f8, %dx (32-bit code, operand-size prefix) */
	p[n++] = 0xba;
	p[n++] = 0xf8;
	p[n++] = 0x03;
	for (size_t i = 0; i < sizeof(msg) - 1; i++) {
		p[n++] = 0xb0; /* mov $c, %al */
		p[n++] = (uint8_t)msg[i];
		p[n++] = 0xee; /* out %al, (%dx) */
	}
	p[n++] = 0xb0; /* mov $0xfe, %al */
	p[n++] = 0xfe;
	p[n++] = 0xe6; /* out %al, $0x64 */
	p[n++] = 0x64;
	p[n++] = 0xf4; /* hlt */
	return n;
}

/* Loads an identity-linked ELF64 into guest memory; returns its entry point or 0. */
static uint64_t floor_load_elf(struct floor *f, const char *path)
{
	uint64_t entry = 0;
	struct stat st;
	uint8_t *img;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fail(path);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (img == MAP_FAILED) {
		fail(path);
		return 0;
	}
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	if ((size_t)st.st_size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff > (uint64_t)st.st_size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size - eh->e_phoff) {
		fprintf(stderr, "kvm-floor: %s: not an ELF64 image\n", path);
		goto out;
	}
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > (uint64_t)st.st_size ||
		    ph[i].p_filesz > (uint64_t)st.st_size - ph[i].p_offset ||
		    ph[i].p_paddr > f->mem_size || ph[i].p_memsz > f->mem_size - ph[i].p_paddr) {
			fprintf(stderr, "kvm-floor: %s: segment %u out of range\n", path, i);
			goto out;
		}
		memcpy(f->mem + ph[i].p_paddr, img + ph[i].p_offset, ph[i].p_filesz);
		memset(f->mem + ph[i].p_paddr + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
	}
	entry = eh->e_entry;
	if (entry == 0 || entry >= f->mem_size) {
		fprintf(stderr, "kvm-floor: %s: entry %#llx outside guest memory\n", path,
			(unsigned long long)entry);
		entry = 0;
	}
out:
	munmap(img, (size_t)st.st_size);
	return entry;
}

static int floor_setup(struct floor *f, size_t mem_mib, bool irqchip, bool thp)
{
	struct kvm_userspace_memory_region slot;
	int mmap_size;

	f->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (f->kvm < 0)
		return fail("/dev/kvm");
	f->vm = ioctl(f->kvm, KVM_CREATE_VM, 0UL);
	if (f->vm < 0)
		return fail("KVM_CREATE_VM");
	if (ioctl(f->vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0)
		return fail("KVM_SET_TSS_ADDR");
	if (irqchip) {
		struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

		if (ioctl(f->vm, KVM_CREATE_IRQCHIP, 0UL) < 0)
			return fail("KVM_CREATE_IRQCHIP");
		if (ioctl(f->vm, KVM_CREATE_PIT2, &pit) < 0)
			return fail("KVM_CREATE_PIT2");
	}
	f->mem_size = mem_mib << 20;
	f->mem = mmap(NULL, f->mem_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (f->mem == MAP_FAILED)
		return fail("mmap guest memory");
	if (thp && madvise(f->mem, f->mem_size, MADV_HUGEPAGE) < 0)
		return fail("madvise(MADV_HUGEPAGE)");
	memset(&slot, 0, sizeof(slot));
	slot.guest_phys_addr = 0;
	slot.memory_size = f->mem_size;
	slot.userspace_addr = (uint64_t)(uintptr_t)f->mem;
	if (ioctl(f->vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	f->vcpu = ioctl(f->vm, KVM_CREATE_VCPU, 0UL);
	if (f->vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	mmap_size = ioctl(f->kvm, KVM_GET_VCPU_MMAP_SIZE, 0UL);
	if (mmap_size < (int)sizeof(struct kvm_run))
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	f->run_size = (size_t)mmap_size;
	f->run = mmap(NULL, f->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->vcpu, 0);
	if (f->run == MAP_FAILED)
		return fail("mmap kvm_run");
	return 0;
}

static int floor_enter_pm32(struct floor *f, uint64_t entry)
{
	struct kvm_sregs sr;
	struct kvm_regs r;
	struct kvm_segment seg;

	if (ioctl(f->vcpu, KVM_GET_SREGS, &sr) < 0)
		return fail("KVM_GET_SREGS");
	memset(&seg, 0, sizeof(seg));
	seg.base = 0;
	seg.limit = 0xffffffff;
	seg.present = 1;
	seg.s = 1;
	seg.db = 1;
	seg.g = 1;
	seg.type = 0x3; /* data, read/write, accessed */
	seg.selector = 0x10;
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss = seg;
	seg.type = 0xb; /* code, execute/read, accessed */
	seg.selector = 0x08;
	sr.cs = seg;
	sr.cr0 = 0x11; /* PE | ET */
	sr.cr4 = 0;
	sr.efer = 0;
	if (ioctl(f->vcpu, KVM_SET_SREGS, &sr) < 0)
		return fail("KVM_SET_SREGS");
	memset(&r, 0, sizeof(r));
	r.rip = entry;
	r.rflags = 0x2;
	if (ioctl(f->vcpu, KVM_SET_REGS, &r) < 0)
		return fail("KVM_SET_REGS");
	return 0;
}

/* Returns 1 when the guest asked to stop, 0 to keep running, -1 on an error. */
static int floor_handle_io(struct floor *f)
{
	struct kvm_run *run = f->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	if (run->io.size != 1 || run->io.count == 0)
		return 0;
	if (run->io.direction == KVM_EXIT_IO_OUT) {
		if (run->io.port == 0x3f8) {
			if (fwrite(data, 1, run->io.count, stdout) != run->io.count)
				return fail("stdout");
		} else if (run->io.port == 0x64 && data[0] == 0xfe) {
			return 1;
		}
	} else {
		memset(data, run->io.port == 0x3fd ? 0x20 : 0xff, run->io.count);
	}
	return 0;
}

static int floor_run(struct floor *f)
{
	for (unsigned n = 0; n < MAX_EXITS; n++) {
		int r;

		if (ioctl(f->vcpu, KVM_RUN, 0UL) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return fail("KVM_RUN");
		}
		switch (f->run->exit_reason) {
		case KVM_EXIT_IO:
			r = floor_handle_io(f);
			if (r)
				return r < 0 ? -1 : 0;
			break;
		case KVM_EXIT_MMIO:
			if (!f->run->mmio.is_write)
				memset(f->run->mmio.data, 0xff, sizeof(f->run->mmio.data));
			break;
		case KVM_EXIT_HLT:
		case KVM_EXIT_SHUTDOWN:
			return 0;
		default:
			fprintf(stderr, "kvm-floor: unexpected exit reason %u\n", f->run->exit_reason);
			return -1;
		}
	}
	fprintf(stderr, "kvm-floor: guest did not stop after %u exits\n", MAX_EXITS);
	return -1;
}

int main(int argc, char **argv)
{
	struct floor f = {.kvm = -1, .vm = -1, .vcpu = -1, .mem = MAP_FAILED, .run = MAP_FAILED};
	const char *elf = NULL;
	bool irqchip = false, thp = false;
	size_t mem_mib = 256;
	uint64_t entry;
	int rc = 1;

	for (; argc > 1 && argv[1][0] == '-'; argc--, argv++) {
		if (strcmp(argv[1], "--irqchip") == 0)
			irqchip = true;
		else if (strcmp(argv[1], "--thp") == 0)
			thp = true;
		else
			break;
	}
	if (argc > 3 || (argc > 1 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: kvm-floor [--irqchip] [--thp] [GUEST.ELF] [MEM_MIB]\n");
		return 2;
	}
	if (argc == 3) {
		char *end;
		unsigned long v = strtoul(argv[2], &end, 10);
		if (*end || v < 2 || v > 4096) {
			fprintf(stderr, "kvm-floor: bad memory size '%s' (MiB, 2..4096)\n", argv[2]);
			return 2;
		}
		mem_mib = v;
	}
	if (argc > 1)
		elf = argv[1];
	if (floor_setup(&f, mem_mib, irqchip, thp))
		goto out;
	if (elf) {
		entry = floor_load_elf(&f, elf);
		if (!entry)
			goto out;
	} else {
		floor_stub(f.mem + STUB_GPA);
		entry = STUB_GPA;
	}
	if (floor_enter_pm32(&f, entry) || floor_run(&f))
		goto out;
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	if (f.run != MAP_FAILED)
		munmap(f.run, f.run_size);
	if (f.mem != MAP_FAILED)
		munmap(f.mem, f.mem_size);
	if (f.vcpu >= 0)
		close(f.vcpu);
	if (f.vm >= 0)
		close(f.vm);
	if (f.kvm >= 0)
		close(f.kvm);
	return rc;
}
