// Razorpay's Checkout on our page: open it with the order the server created, then hand the
// proof it gives back (payment id, signature) to core, which checks it and asks Razorpay before
// anything is credited. See page.py for why the checkout runs here.
(function () {
  "use strict";
  const box = document.getElementById("razorpay-checkout");
  const button = document.getElementById("razorpay-pay");
  const status = document.getElementById("razorpay-status");
  if (!box || !button || !status) return;
  const data = box.dataset;
  const note = document.getElementById("razorpay-needs-script");
  if (note) note.remove();
  button.hidden = false;

  function say(text) {
    status.textContent = text;
  }

  async function confirm(response) {
    say("Confirming your payment…");
    const token = document.querySelector('meta[name="csrf-token"]');
    try {
      const answer = await fetch(data.confirmUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "X-CSRF-Token": token ? token.content : "",
        },
        body: JSON.stringify({ payment: response }),
      });
      if (answer.status === 400) {
        say("This payment could not be verified. Nothing was charged to your credits; " +
          "contact us if money left your account.");
        button.disabled = false;
        return;
      }
    } catch (error) {
      // Not confirmed from here: Razorpay's webhook still confirms it; the return page waits.
    }
    window.location.assign(data.returnUrl);
  }

  button.addEventListener("click", function () {
    if (typeof window.Razorpay !== "function") {
      say("Razorpay's checkout could not be loaded. Check your connection and reload the page.");
      return;
    }
    const options = {
      key: data.key,
      amount: data.amount,
      currency: data.currency,
      name: data.name,
      description: data.description,
      prefill: { email: data.email, name: data.contactName },
      handler: confirm,
      modal: {
        ondismiss: function () {
          say("Payment cancelled. You can try again.");
          button.disabled = false;
        },
      },
    };
    if (data.order) options.order_id = data.order;
    if (data.subscription) options.subscription_id = data.subscription;
    const checkout = new window.Razorpay(options);
    checkout.on("payment.failed", function (response) {
      const reason = response && response.error && response.error.description;
      say("The payment failed" + (reason ? ": " + reason : ".") + " You can try again.");
    });
    button.disabled = true;
    say("");
    checkout.open();
  });
})();
