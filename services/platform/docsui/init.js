// Starts Swagger UI on the docs page. It is a file rather than an inline
// script so that the page works under a Content-Security-Policy that forbids
// inline scripts; the spec URL comes from the page through a data attribute.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    tryItOutEnabled: true,
    // The default validator badge calls a public service that an
    // air-gapped cluster cannot reach.
    validatorUrl: null,
  });
})();
