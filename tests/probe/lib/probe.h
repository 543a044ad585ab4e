/* SPDX-License-Identifier: MIT */
/*
 * Probe guest framework: tiny freestanding x86-64 guests booted through the PVH entry.
 *
 * Contract:
 * - start.S enters in 32-bit protected mode (PVH: EBX = struct hvm_start_info), zeroes .bss,
 *   identity-maps the first 4 GiB with 2 MiB pages (the MMIO hole uncached), enters long mode,
 *   installs an IDT whose every vector lands in trap_dispatch(), and calls probe_entry(),
 *   which initialises the console, the LAPIC and the TSC clock and then calls probe_main().
 * - Each probe is one C file that defines PROBE_NAME (a string) through PROBE(name) and
 *   probe_main(). It ends with probe_pass() or probe_fail(): both print exactly one result line,
 *   "PROBE <name>: PASS" or "PROBE <name>: FAIL <reason>", and power the VM off. A CPU exception
 *   or an unhandled interrupt becomes a FAIL line. The runner (run_probe.py) parses these lines.
 * - Every wait in the framework is bounded (TSC based), so a VMM that stops answering makes a
 *   probe print FAIL instead of hanging (the runner also has its own timeout).
 * - Build flags forbid SSE/MMX/AVX (nested KVM hosts); only general registers are used.
 */
#ifndef PROBE_H
#define PROBE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/layout.h"

#define PROBE(name) const char probe_name[] = name

extern const char probe_name[];

/* ---- PVH start info (Xen public/arch-x86/hvm/start_info.h, version 1) -------------------- */
#define HVM_START_MAGIC 0x336ec578u
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;	/* version >= 1 */
	uint32_t memmap_entries; /* version >= 1 */
	uint32_t reserved;
};
struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* 1 = RAM, 2 = reserved, 3 = ACPI, ... (e820 types) */
	uint32_t reserved;
};

void probe_main(const struct hvm_start_info *si);

/* ---- verdicts --------------------------------------------------------------------------- */
__attribute__((noreturn)) void probe_pass(void);
__attribute__((noreturn, format(printf, 1, 2))) void probe_fail(const char *fmt, ...);
#define CHECK(cond, ...)                    \
	do {                                \
		if (!(cond))                \
			probe_fail(__VA_ARGS__); \
	} while (0)

__attribute__((noreturn)) void poweroff(void);
__attribute__((noreturn)) void reset_acpi(void);
__attribute__((noreturn)) void reset_i8042(void);
__attribute__((noreturn)) void halt_forever(void);

/* ---- port and MMIO access ---------------------------------------------------------------- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
/* MMIO accessors: a single mov of the given width (no compiler splitting or merging). */
static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uint64_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline uint64_t mmio_read64(uint64_t a) { return *(volatile uint64_t *)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_write64(uint64_t a, uint64_t v) { *(volatile uint64_t *)a = v; }

#define barrier() __asm__ volatile("" ::: "memory")
#define mb() __asm__ volatile("mfence" ::: "memory")
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
/* sti;hlt is atomic with respect to interrupts: no wake-up is lost. */
static inline void irq_enable_and_halt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

/* ---- console (COM1, polled 8250) and printf ---------------------------------------------- */
void serial_init(void);
void serial_putc(char c);
bool serial_getc_timeout(char *c, uint64_t timeout_us); /* false on timeout */
__attribute__((format(printf, 1, 2))) int printf(const char *fmt, ...);
__attribute__((format(printf, 1, 0))) int vprintf(const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) int snprintf(char *buf, size_t n, const char *fmt, ...);
__attribute__((format(printf, 3, 0))) int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);

/* ---- small libc ---------------------------------------------------------------------------- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
/* Bump allocator over a static pool; zeroed memory, align is a power of two. Fails the probe
 * when exhausted. */
void *probe_alloc(size_t size, size_t align);

/* ---- command line ------------------------------------------------------------------------- */
/* The kernel command line, copied out of guest memory at entry ("" if none). */
const char *cmdline(void);
/* Value of "key=value" on the command line as a number (decimal or 0x hex); def if absent. */
uint64_t cmdline_u64(const char *key, uint64_t def);
/* Copy of the string value of "key=value" into buf; false if absent. */
bool cmdline_str(const char *key, char *buf, size_t n);
bool cmdline_has(const char *word); /* a bare word or key=... */
extern const struct hvm_start_info *boot_start_info;
extern uint32_t boot_bss_was_dirty; /* nonzero: the loader left non-zero bytes in .bss */
struct boot_entry_state {
	uint32_t cr0, cr4, eflags, efer;
	uint16_t cs, ds, ss, pad;
};
extern const struct boot_entry_state boot_entry_state; /* registers at the PVH entry */
extern const uint8_t __image_start[], __image_end[];

/* ---- time (TSC, calibrated against the LAPIC timer at boot) ------------------------------ */
void time_init(void); /* called at entry */
uint64_t time_us(void);
void udelay(uint64_t us);
extern uint64_t tsc_per_us;

/* ---- interrupts ------------------------------------------------------------------------- */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};
typedef void (*irq_handler_t)(struct trap_frame *f);
/* Install a handler for vector (32..255); NULL removes it. Unhandled interrupts fail the probe. */
void irq_set_handler(unsigned vector, irq_handler_t fn);
/* Exceptions (0..31) always fail the probe with vector, RIP, error code and CR2. */

/* ---- LAPIC / IOAPIC --------------------------------------------------------------------- */
#define LAPIC_ID 0x020
#define LAPIC_VER 0x030
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_ESR 0x280
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0
#define LAPIC_LVT_MASKED (1u << 16)
#define LAPIC_TIMER_PERIODIC (1u << 17)
#define VEC_SPURIOUS 0xff

uint32_t lapic_read(unsigned reg);
void lapic_write(unsigned reg, uint32_t v);
void lapic_enable(void); /* software-enable, mask LINT0/LINT1/timer, TPR 0 */
void lapic_eoi(void);
uint32_t lapic_id(void);
/* Send an IPI (ICR high then low) and wait (bounded) for the delivery status to clear. */
bool lapic_send_ipi(uint32_t dest, uint32_t icr_lo);

uint32_t ioapic_read(unsigned reg);
void ioapic_write(unsigned reg, uint32_t v);
unsigned ioapic_pins(void);
/* Route IOAPIC pin to vector on APIC dest; level/active-low per flags; masked when mask. */
void ioapic_route(unsigned pin, uint8_t vector, uint8_t dest, bool level, bool active_low, bool mask);

/* ---- CMOS ------------------------------------------------------------------------------- */
uint8_t cmos_read(uint8_t reg);
void cmos_write(uint8_t reg, uint8_t v);
/* RTC seconds register read outside an update cycle (bounded wait on UIP), as binary. */
unsigned rtc_seconds(void);
/* Busy-wait (bounded) for the RTC seconds to change; false on timeout. */
bool rtc_wait_tick(uint64_t timeout_us);

/* ---- SMP ------------------------------------------------------------------------------ */
#define MAX_CPUS 32
/* AP entry: called on each AP's own stack with its start index (0, 1, ...); interrupts off.
 * When it returns, the AP halts forever with interrupts disabled. */
typedef void (*ap_fn_t)(unsigned index);
/* Copy the trampoline below 1 MiB and broadcast INIT-SIPI-SIPI to all but self. Returns the
 * number of APs that reached ap_fn within timeout_us after the count stopped growing. */
unsigned smp_start_aps(ap_fn_t fn, unsigned expected, uint64_t timeout_us);
void spin_lock(volatile uint32_t *l);
void spin_unlock(volatile uint32_t *l);

/* ---- PCI (ECAM, bus 0; "ecam=0x..." on the command line overrides the base) ------------- */
#define PCI_CAP_MSIX 0x11
#define PCI_CAP_VENDOR 0x09
#define PCI_CMD_MEM 0x2
#define PCI_CMD_MASTER 0x4
#define PCI_CMD_INTX_DISABLE 0x400
struct pci_dev {
	uint8_t dev, fn;
	uint64_t cfg; /* ECAM address of its config space */
	uint16_t vendor, device;
};
uint64_t pci_ecam_base(void);
bool pci_dev_at(unsigned dev, unsigned fn, struct pci_dev *out); /* false: no function there */
bool pci_find(uint16_t vendor, uint16_t device, struct pci_dev *out);
uint8_t pci_read8(const struct pci_dev *d, unsigned off);
uint16_t pci_read16(const struct pci_dev *d, unsigned off);
uint32_t pci_read32(const struct pci_dev *d, unsigned off);
void pci_write8(const struct pci_dev *d, unsigned off, uint8_t v);
void pci_write16(const struct pci_dev *d, unsigned off, uint16_t v);
void pci_write32(const struct pci_dev *d, unsigned off, uint32_t v);
/* Offset of the first capability with id after offset `after` (0: from the start), 0 if
 * none. Fails the probe if the list is malformed (loops, points into the header). */
unsigned pci_find_cap(const struct pci_dev *d, uint8_t id, unsigned after);
/* Memory BAR: address and size (sizing with decode off). An unassigned BAR (0, or above
 * 4 GiB where the probe has no mapping) is given an address from the top of the PCI window
 * and *assigned is set. Returns false for an absent or I/O BAR. */
bool pci_bar(const struct pci_dev *d, unsigned bar, uint64_t *addr, uint64_t *size, bool *assigned);
/* Legacy 0xcf8/0xcfc configuration read, bus 0. */
uint32_t pci_cf8_read32(unsigned dev, unsigned fn, unsigned off);

#endif
