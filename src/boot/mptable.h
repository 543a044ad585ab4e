/* SPDX-License-Identifier: MIT */
/*
 * The Intel MultiProcessor Specification 1.4 table: a floating pointer at
 * LAYOUT_MPTABLE_FLOAT and a configuration table at LAYOUT_MPTABLE_CONFIG describing the
 * same machine as the ACPI MADT (vCPUs with APIC IDs 0..n-1, one IOAPIC, the ISA bus with
 * IRQ 0 on pin 2 and IRQ 9 level/active-high, LINT0 = ExtINT, LINT1 = NMI).
 *
 * Why: Linux scans low memory for an MP floating pointer early in boot even when it will
 * use ACPI, and stops at the first hit; without one it walks every 16 bytes of the BIOS
 * area with a temporary mapping each time, which costs seconds on a nested host. It also
 * lets a guest booted with acpi=off find its CPUs.
 */
#ifndef VIREO_BOOT_MPTABLE_H
#define VIREO_BOOT_MPTABLE_H

#include "common/compiler.h"
#include "memory/gmem.h"

#define MPTABLE_MAX_CPUS 255

/* -EINVAL for 0 or more than MPTABLE_MAX_CPUS vCPUs, -EFAULT if the area is not RAM. */
int mptable_build(const struct gmem *m, unsigned nr_vcpus) WUR;

#endif
