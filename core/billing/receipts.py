"""PDF receipts of paid orders (fpdf2), with the seller details and tax line an admin sets.

Set in DejaVu Sans (``fonts/``, licence included) so any name or address prints. A receipt is
drawn from the order as stored (its price, discount and currency), never from the current plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from multinotes.app_settings import get_setting, set_setting
from multinotes.billing.models import Order, Plan
from multinotes.db import Database

FONTS = Path(__file__).parent / "fonts"
SETTING = "billing.seller"
ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"}


class SellerSettings(BaseModel):
    """What every receipt says about the seller."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    address: str = Field(default="", max_length=1000, description="Several lines allowed.")
    tax_id: str = Field(default="", max_length=100, description="VAT/GST number, if any.")
    tax_label: str = Field(default="", max_length=60, description='e.g. "VAT"; empty: no tax line.')
    tax_percent: float = Field(
        default=0, ge=0, le=100, description="Included in the prices; shown as its own line."
    )


async def seller(db: Database) -> SellerSettings:
    return SellerSettings.model_validate(await get_setting(db, SETTING) or {})


async def save_seller(db: Database, values: SellerSettings) -> None:
    await set_setting(db, SETTING, values.model_dump())


def money(amount: int, currency: str) -> str:
    if currency.upper() in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


def receipt_pdf(
    order: Order,
    plan: Plan | None,
    buyer: dict[str, Any],
    who: SellerSettings,
    *,
    paid_with: str | None = None,
) -> bytes:
    """The receipt; ``paid_with`` names how it was paid when not through ``order.backend``
    (a bank transfer an administrator recorded)."""
    # fpdf2 (and Pillow) on first use: ~60 MB a web process that never sends a receipt skips.
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4")
    pdf.set_title(f"Receipt {order.id}")
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 18)
    pdf.cell(0, 10, "Receipt", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 10)
    if who.name:
        pdf.set_font("DejaVu", "B", 11)
        pdf.cell(0, 6, who.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("DejaVu", "", 10)
    if who.address:
        pdf.multi_cell(0, 5, who.address, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if who.tax_id:
        pdf.cell(0, 5, f"Tax id: {who.tax_id}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    paid = order.paid_at.strftime("%Y-%m-%d %H:%M UTC") if order.paid_at else "-"
    for label, value in (
        ("Receipt number", order.id),
        ("Paid", paid),
        ("Billed to", f"{buyer['name']} <{buyer['email']}>"),
        ("Paid with", paid_with or order.backend.capitalize()),
    ):
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(40, 6, label)
        pdf.set_font("DejaVu", "", 10)
        pdf.cell(0, 6, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    name = plan.name if plan else "Plan"
    lines = [(f"{name}: {order.credits:,} credits", money(order.subtotal, order.currency))]
    if order.discount:
        lines.append(("Coupon discount", "-" + money(order.discount, order.currency)))
    if order.bonus_credits:
        lines.append((f"Bonus: {order.bonus_credits:,} credits", money(0, order.currency)))
    pdf.set_font("DejaVu", "", 10)
    for text, amount in lines:
        pdf.cell(130, 7, text, border="B")
        pdf.cell(0, 7, amount, border="B", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(130, 8, "Total paid")
    pdf.cell(
        0, 8, money(order.total, order.currency), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    if who.tax_label and who.tax_percent:
        tax = round(order.total - order.total / (1 + who.tax_percent / 100))
        pdf.set_font("DejaVu", "", 10)
        pdf.cell(130, 6, f"of which {who.tax_label} {who.tax_percent:g}%")
        pdf.cell(0, 6, money(tax, order.currency), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if order.status in ("refunded", "disputed"):
        pdf.ln(4)
        pdf.set_font("DejaVu", "B", 11)
        pdf.cell(0, 6, f"This order was {order.status}.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
