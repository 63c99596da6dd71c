// The only script: a select marked data-autosubmit submits its form when changed (the area
// filter drills down without a second tap). Everything works without it.
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target instanceof HTMLSelectElement && target.dataset.autosubmit && target.form) {
    target.form.requestSubmit ? target.form.requestSubmit() : target.form.submit();
  }
});
