/** An error from the API: its code (what clients branch on) and its message. */
export function ApiError({ error }: { error: { code: string; message: string } }) {
  return (
    <div class="error-banner" role="alert" data-testid="api-error">
      <code>{error.code}</code> <span>{error.message}</span>
    </div>
  )
}
