// The visit form's optional check-in: "add my location" fills the hidden latitude, longitude
// and accuracy from the phone. Without this script (or without a location) the form works.
(function () {
  var button = document.getElementById("location-add");
  var box = document.getElementById("visit-checkin");
  if (!button || !box || !navigator.geolocation) return;
  var status = document.getElementById("location-status");
  box.hidden = false;
  button.hidden = false;
  function put(id, value) {
    var input = document.getElementById(id);
    if (input) input.value = value;
  }
  button.addEventListener("click", function () {
    status.textContent = button.dataset.waiting;
    navigator.geolocation.getCurrentPosition(
      function (position) {
        var c = position.coords;
        put("id_latitude", c.latitude.toFixed(6));
        put("id_longitude", c.longitude.toFixed(6));
        put("id_accuracy", Math.round(c.accuracy));
        status.textContent = button.dataset.done + " (±" + Math.round(c.accuracy) + " m)";
      },
      function () {
        status.textContent = button.dataset.failed;
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }
    );
  });
})();
