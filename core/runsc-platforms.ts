/**
 * gVisor's platforms: how the Sentry intercepts the job's system calls. Each is
 * gVisor (the job meets the same Sentry); they differ in speed and in what the host
 * must offer. systrap (seccomp traps, current runsc's default) runs syscall-heavy code
 * an order of magnitude faster than ptrace here; ptrace works wherever ptrace does;
 * kvm needs /dev/kvm and hangs on this machine, so auto never tries it.
 */
export const RUNSC_PLATFORMS = ['systrap', 'ptrace', 'kvm'] as const
export type RunscPlatform = (typeof RUNSC_PLATFORMS)[number]

/** What AIRLOCK_RUNSC_PLATFORM accepts. */
export const PLATFORM_CHOICES = ['auto', ...RUNSC_PLATFORMS] as const
export type PlatformChoice = (typeof PLATFORM_CHOICES)[number]

/** auto's preference order: the first that runs a probe sandbox here is used. */
export const AUTO_PLATFORMS: readonly RunscPlatform[] = ['systrap', 'ptrace']
