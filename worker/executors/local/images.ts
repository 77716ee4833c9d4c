import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Written by sandbox-images/build.sh next to each image's root filesystem. */
export interface ImageManifest {
  image: string
  /** Hash of the image definition it was built from. */
  definitionHash: string
  builtAt: string
  /** Runtime name -> version, read from the built root filesystem. */
  versions: Record<string, string>
}

export class ImageStore {
  constructor(private readonly dir: string) {}

  rootfs(image: string): string {
    return join(this.dir, image, 'rootfs')
  }

  async manifest(image: string): Promise<ImageManifest | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, image, 'manifest.json'), 'utf8')) as ImageManifest
    } catch {
      return undefined
    }
  }

  async problem(image: string): Promise<string | undefined> {
    try {
      await access(join(this.rootfs(image), 'bin', 'sh'))
    } catch {
      return `sandbox image "${image}" is not installed at ${this.rootfs(image)} (run sandbox-images/build.sh)`
    }
    if (!(await this.manifest(image)))
      return `sandbox image "${image}" has no manifest.json (rebuild it with sandbox-images/build.sh)`
    return undefined
  }
}
