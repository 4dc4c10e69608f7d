/*
 * The C floor of apiclab's real-KVM figures: the same ioctls, in the same order, for the same
 * agent ROM, with nothing around them (built by bench/kvm_floor.py with the machine's gcc).
 *
 *   kvm_floor whole   ROM LAPIC_IMAGE N   N whole runs: /dev/kvm to result, as KvmBackend.run
 *   kvm_floor inplace ROM LAPIC_IMAGE N [coalesced|exits]
 *                                         one VM rebooted N times in place, as InPlaceVm; its log
 *                                         port coalesced (default, where the host can) or not
 *
 * A run: VM, RAM and ROM slots (and the alias below 4 GiB), TSS, irqchip, PIT and the PC's GSI
 * routes, one vCPU with x2APIC and TSC-deadline in CPUID, the reset registers, KVM_SET_LAPIC with
 * the image, KVM_RUN until the agent writes its exit port (its port-0xE9 log kept), KVM_GET_LAPIC.
 * A reboot in place: RAM cleared, ROM copied in again, the registers (into kvm_run's sync_regs where
 * KVM_CAP_SYNC_REGS allows, else KVM_SET_REGS), KVM_SET_SREGS, KVM_SET_LAPIC, KVM_SET_MSRS (TSC
 * deadline 0), the cycle, KVM_GET_LAPIC before and after the reset.
 * Prints one JSON line: runs, seconds, and the outcomes read from the agent's "@W"/"@B" records.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define ROM_SIZE 0x10000
#define ROM_BASE 0xF0000
#define RAM_SIZE ROM_BASE
#define ROM_ALIAS (0x100000000ULL - ROM_SIZE)
#define TSS_ADDR 0xFFFBD000
#define AGENT_RAM 0x8000
#define MSR_TSC_DEADLINE 0x6E0
#define LOG_MAX 65536
#ifndef PAGE_SIZE
#define PAGE_SIZE 4096  /* KVM_COALESCED_MMIO_MAX: the ring is one page */
#endif

static void die(const char *what) {
    fprintf(stderr, "kvm_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *what) {
    int r = ioctl(fd, req, arg);
    if (r < 0) die(what);
    return r;
}

struct vm {
    int kvm, vm, vcpu;
    uint8_t *ram, *rom;
    struct kvm_run *run;
    size_t run_size;
    struct kvm_sregs sregs;
    struct kvm_coalesced_mmio_ring *ring;  /* the log port's writes, where coalesced */
};

/* "exits": every byte of the agent's log is an exit to user space; "coalesced": the log port is
 * registered with KVM_REGISTER_COALESCED_MMIO (pio = 1, KVM_CAP_COALESCED_PIO), its writes queue
 * in the ring page of the vCPU mapping and are read at the next exit, as apiclab's InPlaceVm */
static int coalesce_log = 1;

struct outcome { long tick, bugcheck, other, exits; };

static uint8_t rom_image[ROM_SIZE];
static struct kvm_lapic_state lapic_image, readback;
static char logbuf[LOG_MAX];

static void gsi_routes(int vm) {
    /* QEMU's kvm_pc_setup_irq_routing: ISA IRQs to both 8259s, and to the IOAPIC pin of the same
     * number but IRQ0 -> pin 2 (machine.py pc_gsi_routes) */
    struct { struct kvm_irq_routing hdr; struct kvm_irq_routing_entry e[64]; } r;
    memset(&r, 0, sizeof r);
    int n = 0;
    for (int i = 0; i < 8; i++) if (i != 2) {
        r.e[n].gsi = i; r.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
        r.e[n].u.irqchip.irqchip = KVM_IRQCHIP_PIC_MASTER; r.e[n].u.irqchip.pin = i; n++;
    }
    for (int i = 8; i < 16; i++) {
        r.e[n].gsi = i; r.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
        r.e[n].u.irqchip.irqchip = KVM_IRQCHIP_PIC_SLAVE; r.e[n].u.irqchip.pin = i - 8; n++;
    }
    for (int i = 0; i < 24; i++) if (i != 2) {
        r.e[n].gsi = i; r.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
        r.e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC; r.e[n].u.irqchip.pin = i == 0 ? 2 : i; n++;
    }
    r.hdr.nr = n;
    xioctl(vm, KVM_SET_GSI_ROUTING, &r, "KVM_SET_GSI_ROUTING");
}

static void set_cpuid(int kvm, int vcpu) {
    static struct { struct kvm_cpuid2 hdr; struct kvm_cpuid_entry2 e[256]; } c;
    memset(&c, 0, sizeof c);
    c.hdr.nent = 256;
    xioctl(kvm, KVM_GET_SUPPORTED_CPUID, &c, "KVM_GET_SUPPORTED_CPUID");
    /* as machine.py guest_cpuid for vCPU 0: x2APIC and TSC-deadline, and APIC ID 0 in leaf 1
     * EBX[31:24] and leaf 0xB EDX. KVM leaves those to user space: left as KVM reports them they
     * hold the ID of the host CPU this ran on, and on CPU 1 the agent takes itself for an AP
     * (it logs to port 0x7E1, which the floor did not read: its outcomes were "other"). */
    for (unsigned i = 0; i < c.hdr.nent; i++) {
        if (c.e[i].function == 1) {
            c.e[i].ecx |= (1u << 21) | (1u << 24);
            c.e[i].ebx &= 0x00FFFFFF;
        } else if (c.e[i].function == 0xB) {
            c.e[i].edx = 0;
        }
    }
    xioctl(vcpu, KVM_SET_CPUID2, &c, "KVM_SET_CPUID2");
}

static void region(int vm, uint32_t slot, uint64_t gpa, void *mem, uint64_t size) {
    struct kvm_userspace_memory_region r = {
        .slot = slot, .guest_phys_addr = gpa, .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)mem,
    };
    xioctl(vm, KVM_SET_USER_MEMORY_REGION, &r, "KVM_SET_USER_MEMORY_REGION");
}

static void open_vm(struct vm *m) {
    m->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (m->kvm < 0) die("/dev/kvm");
    if (ioctl(m->kvm, KVM_GET_API_VERSION, 0) != 12) die("KVM API version");
    int caps[] = {KVM_CAP_IRQCHIP, KVM_CAP_USER_MEMORY, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_GET_TSC_KHZ};
    for (unsigned i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if (ioctl(m->kvm, KVM_CHECK_EXTENSION, caps[i]) <= 0) die("capability");
    m->run_size = (size_t)xioctl(m->kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
    m->vm = xioctl(m->kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
    m->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    m->rom = mmap(NULL, ROM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m->ram == MAP_FAILED || m->rom == MAP_FAILED) die("mmap");
    memcpy(m->rom, rom_image, ROM_SIZE);
    region(m->vm, 0, 0, m->ram, RAM_SIZE);
    region(m->vm, 1, ROM_BASE, m->rom, ROM_SIZE);
    region(m->vm, 2, ROM_ALIAS, m->rom, ROM_SIZE);
    if (ioctl(m->kvm, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0)
        xioctl(m->vm, KVM_SET_TSS_ADDR, (void *)(uintptr_t)TSS_ADDR, "KVM_SET_TSS_ADDR");
    xioctl(m->vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
    if (ioctl(m->kvm, KVM_CHECK_EXTENSION, KVM_CAP_PIT2) > 0) {
        struct kvm_pit_config pit = {0};
        xioctl(m->vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");
        gsi_routes(m->vm);
    }
    m->vcpu = xioctl(m->vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    m->run = mmap(NULL, m->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu, 0);
    if (m->run == MAP_FAILED) die("mmap kvm_run");
    m->ring = NULL;
    int ring_page = ioctl(m->kvm, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
    if (coalesce_log && ring_page > 0 && ioctl(m->kvm, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) > 0) {
        struct kvm_coalesced_mmio_zone zone = {.addr = 0xE9, .size = 1, .pio = 1};
        xioctl(m->vm, KVM_REGISTER_COALESCED_MMIO, &zone, "KVM_REGISTER_COALESCED_MMIO");
        m->ring = (struct kvm_coalesced_mmio_ring *)((uint8_t *)m->run + (size_t)ring_page * 4096);
    }
    set_cpuid(m->kvm, m->vcpu);
    /* the power-up state (SDM vol. 3A Table 9-1), as machine.py reset_registers */
    xioctl(m->vcpu, KVM_GET_SREGS, &m->sregs, "KVM_GET_SREGS");
    m->sregs.cs.selector = 0xF000; m->sregs.cs.base = 0xFFFF0000; m->sregs.cs.limit = 0xFFFF;
    struct kvm_segment *segs[] = {&m->sregs.ds, &m->sregs.es, &m->sregs.fs, &m->sregs.gs,
                                  &m->sregs.ss};
    for (int i = 0; i < 5; i++) { segs[i]->selector = 0; segs[i]->base = 0; segs[i]->limit = 0xFFFF; }
    m->sregs.cr0 = 0x60000010;
    xioctl(m->vcpu, KVM_SET_SREGS, &m->sregs, "KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = 0xFFF0, .rflags = 0x2};
    xioctl(m->vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

static void close_vm(struct vm *m) {
    munmap(m->run, m->run_size);
    close(m->vcpu);
    close(m->vm);
    munmap(m->ram, RAM_SIZE);
    munmap(m->rom, ROM_SIZE);
    close(m->kvm);
}

/* the log port's coalesced writes, in order, to the log (api.rst: KVM_REGISTER_COALESCED_MMIO) */
static size_t drain(struct vm *m, size_t len) {
    struct kvm_coalesced_mmio_ring *ring = m->ring;
    while (ring->first != ring->last) {
        struct kvm_coalesced_mmio *e = &ring->coalesced_mmio[ring->first];
        if (len + e->len < LOG_MAX) { memcpy(logbuf + len, e->data, e->len); len += e->len; }
        __atomic_store_n(&ring->first, (ring->first + 1) % KVM_COALESCED_MMIO_MAX, __ATOMIC_RELEASE);
    }
    return len;
}

/* KVM_RUN until the exit port; the outcome from the "@W ... D|T" and "@B" records */
static void run_cycle(struct vm *m, struct outcome *o) {
    size_t len = 0;
    for (;;) {
        if (ioctl(m->vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
        o->exits++;
        if (m->ring) len = drain(m, len);
        struct kvm_run *r = m->run;
        if (r->exit_reason == KVM_EXIT_IO) {
            uint8_t *data = (uint8_t *)r + r->io.data_offset;
            size_t n = (size_t)r->io.size * r->io.count;
            if (r->io.direction == KVM_EXIT_IO_OUT) {
                if (r->io.port == 0xE9) {
                    if (len + n < LOG_MAX) { memcpy(logbuf + len, data, n); len += n; }
                } else if (r->io.port == 0x501 || r->io.port == 0x8900) {
                    break;
                }
            } else {
                memset(data, 0xFF, n);
            }
        } else if (r->exit_reason != KVM_EXIT_MMIO) {
            fprintf(stderr, "kvm_floor: exit reason %u\n", r->exit_reason);
            o->other++;
            return;
        }
    }
    logbuf[len] = 0;
    /* "@W" tsc(16) vector(2) count(8) D|T */
    char *w = NULL;
    for (char *p = logbuf; (p = strstr(p, "@W")) != NULL; p += 2) w = p;
    if (strstr(logbuf, "@B")) o->bugcheck++;
    else if (w && strlen(w) > 28 && w[28] == 'D') o->tick++;
    else o->other++;
}

static int sync_regs;  /* KVM_CAP_SYNC_REGS with the GPRs: registers through kvm_run, as apiclab */

static void reset_in_place(struct vm *m, struct kvm_regs *regs, void *msrs) {
    memset(m->ram, 0, AGENT_RAM);
    memcpy(m->rom, rom_image, ROM_SIZE);
    if (sync_regs) {
        m->run->s.regs.regs = *regs;  /* loaded by the next KVM_RUN */
        m->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
    } else {
        xioctl(m->vcpu, KVM_SET_REGS, regs, "KVM_SET_REGS");
    }
    xioctl(m->vcpu, KVM_SET_SREGS, &m->sregs, "KVM_SET_SREGS");
    xioctl(m->vcpu, KVM_SET_LAPIC, &lapic_image, "KVM_SET_LAPIC");
    if (ioctl(m->vcpu, KVM_SET_MSRS, msrs) != 1) die("KVM_SET_MSRS");
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void read_file(const char *path, void *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    if (!f || fread(buf, 1, size, f) != size) die(path);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 5 && !(argc == 6 && (strcmp(argv[5], "exits") == 0 || strcmp(argv[5], "coalesced") == 0))) {
        fprintf(stderr, "usage: kvm_floor whole|inplace ROM LAPIC_IMAGE N [coalesced|exits]\n");
        return 2;
    }
    /* a whole run logs through exits, as KvmBackend; a reboot in place coalesces, as InPlaceVm */
    coalesce_log = argc == 6 ? strcmp(argv[5], "coalesced") == 0 : strcmp(argv[1], "inplace") == 0;
    read_file(argv[2], rom_image, ROM_SIZE);
    read_file(argv[3], &lapic_image, sizeof lapic_image);
    long n = atol(argv[4]);
    int inplace = strcmp(argv[1], "inplace") == 0;
    struct outcome o = {0};
    double start = now();
    if (inplace) {
        struct vm m;
        open_vm(&m);
        sync_regs = (ioctl(m.kvm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS) != 0;
        struct kvm_regs regs = {.rip = 0xFFF0, .rflags = 0x2};
        struct { struct kvm_msrs hdr; struct kvm_msr_entry e[1]; } msrs;
        memset(&msrs, 0, sizeof msrs);
        msrs.hdr.nmsrs = 1;
        msrs.e[0].index = MSR_TSC_DEADLINE;
        reset_in_place(&m, &regs, &msrs);
        start = now();  /* a storm's rate counts reboots, not the VM's creation */
        for (long i = 0; i < n; i++) {
            run_cycle(&m, &o);
            xioctl(m.vcpu, KVM_GET_LAPIC, &readback, "KVM_GET_LAPIC");
            reset_in_place(&m, &regs, &msrs);
            xioctl(m.vcpu, KVM_GET_LAPIC, &readback, "KVM_GET_LAPIC");
        }
        close_vm(&m);
    } else {
        for (long i = 0; i < n; i++) {
            struct vm m;
            open_vm(&m);
            xioctl(m.vcpu, KVM_SET_LAPIC, &lapic_image, "KVM_SET_LAPIC");
            if (ioctl(m.vcpu, KVM_GET_TSC_KHZ, 0) <= 0) die("KVM_GET_TSC_KHZ");
            run_cycle(&m, &o);
            xioctl(m.vcpu, KVM_GET_LAPIC, &readback, "KVM_GET_LAPIC");
            close_vm(&m);
        }
    }
    double seconds = now() - start;
    printf("{\"mode\": \"%s\", \"log\": \"%s\", \"runs\": %ld, \"seconds\": %.6f, \"tick\": %ld, \"bugcheck\": %ld, "
           "\"other\": %ld, \"exits\": %ld}\n", argv[1], coalesce_log ? "coalesced" : "exits", n, seconds, o.tick, o.bugcheck, o.other,
           o.exits);
    return 0;
}
