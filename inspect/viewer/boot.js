// @ts-check
// Runs first: counts uncaught errors into <body data-errors> so a headless test can read them from the DOM.
(function () {
  var n = 0;
  function count() { n += 1; document.body.setAttribute('data-errors', String(n)); }
  window.addEventListener('error', count);
  window.addEventListener('unhandledrejection', count);
})();
