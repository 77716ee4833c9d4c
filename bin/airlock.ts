#!/usr/bin/env node
import { main } from '../cli/program.js'

// Let pending output flush before exiting with the code.
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
  setImmediate(() => process.exit(code))
})
