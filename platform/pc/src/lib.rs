//! The PC platform: PVH entry, GDT/IDT, APIC/IOAPIC, SMP start, PCI
//! configuration access, serial.
#![no_std]
