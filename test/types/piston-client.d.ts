// piston-client (npm) ships JavaScript only; these are the parts the tests call, as its
// index.js defines them. Answers are whatever the server's JSON was (or, when the request
// failed, { success: false, error }).
declare module 'piston-client' {
  export interface PistonClientFile {
    name?: string
    content: string
    encoding?: 'utf8' | 'base64' | 'hex'
  }
  export interface PistonClientConfig {
    language?: string
    version?: string
    files?: PistonClientFile[]
    stdin?: string
    args?: string[]
    compileTimeout?: number
    runTimeout?: number
    compileMemoryLimit?: number
    runMemoryLimit?: number
  }
  export interface PistonClient {
    runtimes(): Promise<unknown>
    execute(language: string, code: string, config?: PistonClientConfig): Promise<unknown>
    execute(config: PistonClientConfig): Promise<unknown>
  }
  /** `server` defaults to emkc.org's public instance; any other is used as `${server}/api/v2/...`. */
  export function piston(opts?: { server?: string }): PistonClient
  export default piston
}
