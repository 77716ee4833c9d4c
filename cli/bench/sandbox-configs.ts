// The configurations alone, apart from the code that runs them: the CLI names them in its
// help, and loading the executors for that would slow every command's start.
import type { PlatformChoice } from '../../core/runsc-platforms.js'

export interface SandboxConfigDef {
  describe: string
  runscPath?: string
  platform?: PlatformChoice
  runc?: true
  seccomp?: false
}

/**
 * Sandbox configurations `airlock bench --sandboxes` compares on this machine: the
 * same job through the local executor (same bundle, cgroups and capture), under
 * Debian's 2022 runsc, the pinned runsc on either platform, and runc (no sandbox:
 * the baseline every ratio is taken to), and systrap without the seccomp profile.
 */
export const SANDBOX_CONFIGS = {
  'debian-ptrace': { describe: "Debian's runsc (2022), ptrace", runscPath: '/usr/bin/runsc', platform: 'ptrace' },
  ptrace: { describe: 'pinned runsc, ptrace', platform: 'ptrace' },
  systrap: { describe: 'pinned runsc, systrap', platform: 'systrap' },
  // What the seccomp profile costs: the same sandbox without it (never a setting).
  'systrap-no-seccomp': {
    describe: 'pinned runsc, systrap, without the seccomp profile',
    platform: 'systrap',
    seccomp: false,
  },
  runc: { describe: 'runc: a plain container, no gVisor', runc: true },
} as const satisfies Record<string, SandboxConfigDef>

export type SandboxConfigName = keyof typeof SANDBOX_CONFIGS
export const SANDBOX_CONFIG_NAMES = Object.keys(SANDBOX_CONFIGS) as SandboxConfigName[]
