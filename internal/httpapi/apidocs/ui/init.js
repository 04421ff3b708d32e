// Swagger UI 5 (swagger-ui-dist, Apache-2.0, embedded: no CDN). "Authorize" takes an API key.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  tryItOutEnabled: false,
  displayRequestDuration: true,
});
