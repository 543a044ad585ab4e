/* SPDX-License-Identifier: MIT */
/*
 * Probe runtime: C entry, verdicts, power control, command line, IDT and trap dispatch,
 * a bump allocator and the few libc functions the compiler may call.
 */
#include "probe.h"

#define CMDLINE_MAX 1024
#define POOL_SIZE (1024 * 1024)

static char cmdline_buf[CMDLINE_MAX];
static uint8_t pool[POOL_SIZE] __attribute__((aligned(4096)));
static size_t pool_used;
static irq_handler_t handlers[256];

extern uint8_t idt[];
extern const uint8_t trap_stubs[];

void probe_entry(void);
void trap_dispatch(struct trap_frame *f);

/* ---- libc ---------------------------------------------------------------------------------- */
void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (size_t i = 0; i < n; i++)
		if (p[i] != q[i])
			return p[i] < q[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
		if (!a[i])
			return 0;
	}
	return 0;
}

void *probe_alloc(size_t size, size_t align)
{
	size_t at = (pool_used + align - 1) & ~(align - 1);
	if (at > POOL_SIZE || size > POOL_SIZE - at)
		probe_fail("probe_alloc: pool exhausted (%lu bytes asked)", (unsigned long)size);
	pool_used = at + size;
	memset(pool + at, 0, size);
	return pool + at;
}

/* ---- command line ------------------------------------------------------------------------- */
const char *cmdline(void)
{
	return cmdline_buf;
}

/* Find "key" as a whole word (bare or followed by '='); returns the char after it or NULL. */
static const char *cmdline_find(const char *key)
{
	size_t kl = strlen(key);
	const char *p = cmdline_buf;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, key, kl) && (p[kl] == '=' || p[kl] == ' ' || !p[kl]))
			return p + kl;
		while (*p && *p != ' ')
			p++;
	}
	return NULL;
}

bool cmdline_has(const char *word)
{
	return cmdline_find(word) != NULL;
}

bool cmdline_str(const char *key, char *buf, size_t n)
{
	const char *p = cmdline_find(key);
	size_t i = 0;
	if (!p || *p != '=' || !n)
		return false;
	p++;
	while (p[i] && p[i] != ' ' && i + 1 < n) {
		buf[i] = p[i];
		i++;
	}
	buf[i] = 0;
	return true;
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
	const char *p = cmdline_find(key);
	uint64_t v = 0;
	unsigned base = 10;
	if (!p || *p != '=')
		return def;
	p++;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (; *p && *p != ' '; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			return def;
		v = v * base + d;
	}
	return v;
}

/* ---- verdicts and power --------------------------------------------------------------------- */
void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

void poweroff(void)
{
	outb(PORT_ACPI_SLEEP_CTL, (ACPI_S5_SLP_TYP << 2) | (1 << 5));
	udelay(100000);
	/* Not Vireo: QEMU validation runs with isa-debug-exit at 0xf4 (exit status 1). */
	if (cmdline_has("qemu"))
		outb(0xf4, 0);
	printf("PROBE-ERROR %s: poweroff through port 0x%x did not stop the VM\n", probe_name,
	       PORT_ACPI_SLEEP_CTL);
	halt_forever();
}

void reset_acpi(void)
{
	outb(PORT_ACPI_RESET, ACPI_RESET_VALUE);
	udelay(100000);
	printf("PROBE-ERROR %s: reset through port 0x%x did not reset the VM\n", probe_name,
	       PORT_ACPI_RESET);
	halt_forever();
}

void reset_i8042(void)
{
	outb(PORT_I8042_CMD, 0xfe);
	udelay(100000);
	printf("PROBE-ERROR %s: reset through i8042 (0xfe to port 0x64) did not reset the VM\n",
	       probe_name);
	halt_forever();
}

static volatile uint32_t verdict_lock;

void probe_pass(void)
{
	spin_lock(&verdict_lock);
	printf("PROBE %s: PASS\n", probe_name);
	poweroff();
}

void probe_fail(const char *fmt, ...)
{
	va_list ap;
	char reason[400];
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	spin_lock(&verdict_lock);
	printf("PROBE %s: FAIL %s\n", probe_name, reason);
	poweroff();
}

/* ---- interrupts --------------------------------------------------------------------------- */
static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP",
	"#SS", "#GP", "#PF", "?15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void irq_set_handler(unsigned vector, irq_handler_t fn)
{
	if (vector < 32 || vector > 255)
		probe_fail("irq_set_handler: bad vector %u", vector);
	__atomic_store_n(&handlers[vector], fn, __ATOMIC_SEQ_CST);
}

void trap_dispatch(struct trap_frame *f)
{
	irq_handler_t fn;
	if (f->vector < 32) {
		uint64_t cr2;
		const char *n = exc_names[f->vector] ? exc_names[f->vector] : "?";
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		probe_fail("exception %lu (%s) on APIC %u at rip=0x%lx err=0x%lx cr2=0x%lx rsp=0x%lx",
			   f->vector, n, lapic_id(), f->rip, f->error, cr2, f->rsp);
	}
	if (f->vector == VEC_SPURIOUS)
		return; /* spurious: no EOI */
	fn = __atomic_load_n(&handlers[f->vector], __ATOMIC_SEQ_CST);
	if (!fn)
		probe_fail("unexpected interrupt vector %lu on APIC %u (rip=0x%lx)", f->vector,
			   lapic_id(), f->rip);
	fn(f);
}

static void idt_fill(void)
{
	for (unsigned v = 0; v < 256; v++) {
		uint64_t a = (uint64_t)(uintptr_t)(trap_stubs + 16 * v);
		uint8_t *e = idt + 16 * v;
		uint32_t w0 = (uint32_t)((a & 0xffff) | (0x08u << 16));
		uint32_t w1 = (uint32_t)((a & 0xffff0000) | 0x8e00); /* present, DPL 0, interrupt gate */
		uint32_t w2 = (uint32_t)(a >> 32);
		memcpy(e, &w0, 4);
		memcpy(e + 4, &w1, 4);
		memcpy(e + 8, &w2, 4);
		memset(e + 12, 0, 4);
	}
}

/* ---- entry -------------------------------------------------------------------------------- */
static void cmdline_copy(const struct hvm_start_info *si)
{
	const char *src;
	size_t i;
	cmdline_buf[0] = 0;
	if (!si || si->magic != HVM_START_MAGIC || !si->cmdline_paddr ||
	    si->cmdline_paddr >= LAYOUT_MMIO_HOLE_START)
		return;
	src = (const char *)(uintptr_t)si->cmdline_paddr;
	for (i = 0; i + 1 < CMDLINE_MAX && src[i]; i++)
		cmdline_buf[i] = src[i];
	cmdline_buf[i] = 0;
}

void probe_entry(void)
{
	const struct hvm_start_info *si = boot_start_info;
	idt_fill();
	/* Mask both 8259s: an in-kernel PIC may route through LINT0 (ExtINT) on the BSP. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	serial_init();
	printf("PROBE-BOOT %s\n", probe_name);
	cmdline_copy(si);
	lapic_enable();
	time_init();
	if (!si || si->magic != HVM_START_MAGIC)
		probe_fail("bad PVH start_info at 0x%lx (magic 0x%x)", (uint64_t)(uintptr_t)si,
			   si ? si->magic : 0);
	probe_main(si);
	probe_fail("probe_main returned without a verdict");
}
