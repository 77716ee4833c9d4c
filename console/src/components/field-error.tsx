import type { FieldErrors } from '../field-errors.js'

/** The API's messages about one field, shown beside it. */
export function FieldError({ errors, field }: { errors: FieldErrors; field: string }) {
  const messages = errors.get(field)
  if (!messages) return null
  return (
    <p class="field-error" role="alert" data-field={field} data-testid={`error-${field}`}>
      {messages.join('; ')}
    </p>
  )
}
