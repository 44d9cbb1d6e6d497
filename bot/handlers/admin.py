"""Start, help, binding a team group, and the language switch."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import locale_from_telegram
from bot.team_directory import TeamDirectory
from storage import team

router = Router(name="admin")

LANG_ALIASES = {"zh": "zh_CN", "zh_cn": "zh_CN", "zh-cn": "zh_CN", "中文": "zh_CN", "cn": "zh_CN", "en": "en"}


def help_text() -> str:
    return "\n".join(
        [
            _("<b>Touchpoint</b> — customer care for the support team."),
            "",
            _("/card &lt;phone | nickname | name | order no. | customer id&gt; — the customer's card"),
            _("In a private chat with me, just type the query."),
            _("/follow &lt;customer&gt; &lt;scenario&gt; [minutes] — remind me to follow up"),
            _("/timers — my follow-ups; /timers all — the team's"),
            _("/scenarios — the scenario-response table"),
            _("/lang zh | en | auto — my language for you"),
            _("/cancel — stop what you started (e.g. a note)"),
            _("/bind — bind this group to Touchpoint (team leads)"),
            _("/unbind — stop serving this group (team leads)"),
        ]
    )


@router.message(CommandStart(), flags={"public": True})
@router.message(Command("help"), flags={"public": True})
async def start_or_help(message: Message) -> None:
    await message.answer(help_text())


@router.message(Command("bind"), F.chat.type.in_({"group", "supergroup"}), flags={"public": True})
async def bind(
    message: Message, session: AsyncSession, is_admin: bool, team_directory: TeamDirectory
) -> None:
    if not is_admin or message.from_user is None:
        await message.answer(_("Only a team lead listed in ADMIN_IDS can bind a group."))
        return
    title = message.chat.title or ""
    bound = await team.bind_chat(
        session=session, chat_id=message.chat.id, title=title, bound_by=message.from_user.id
    )
    team_directory.forget_chat(message.chat.id)
    if bound:
        await message.answer(
            _("✅ This group is now a Touchpoint team chat. Its members can use /card here and in private.")
        )
    else:
        await message.answer(_("This group is already bound."))


@router.message(Command("bind", "unbind"), F.chat.type == "private", flags={"public": True})
async def bind_in_private(message: Message) -> None:
    await message.answer(_("Send /bind in the team group you want me to serve."))


@router.message(Command("unbind"), F.chat.type.in_({"group", "supergroup"}), flags={"public": True})
async def unbind(
    message: Message, session: AsyncSession, is_admin: bool, team_directory: TeamDirectory
) -> None:
    if not is_admin:
        await message.answer(_("Only a team lead listed in ADMIN_IDS can unbind a group."))
        return
    unbound = await team.unbind_chat(session=session, chat_id=message.chat.id)
    team_directory.forget_chat(message.chat.id)
    if unbound:
        await message.answer(_("This group is no longer served. /bind brings it back."))
    else:
        await message.answer(_("This group is not bound."))


@router.message(Command("lang"))
async def set_language(
    message: Message, command: CommandObject, session: AsyncSession, i18n: I18n, team_directory: TeamDirectory
) -> None:
    arg = (command.args or "").strip().lower()
    if arg == "auto":
        locale = None
    elif arg in LANG_ALIASES:
        locale = LANG_ALIASES[arg]
    else:
        await message.answer(_("Usage: /lang zh | en | auto"))
        return
    assert message.from_user is not None
    await team.set_agent_locale(
        session=session, user_id=message.from_user.id, display_name=message.from_user.full_name, locale=locale
    )
    team_directory.forget_agent(message.from_user.id)
    shown = locale or locale_from_telegram(message.from_user.language_code, i18n.default_locale)
    with i18n.use_locale(shown):
        if locale is None:
            text = _("Language: automatic, from your Telegram settings.")
        else:
            text = _("Language set: English.") if locale == "en" else _("Language set: Chinese.")
        await message.answer(text)


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext) -> None:
    if await state.get_state() is None:
        await message.answer(_("Nothing to cancel."))
        return
    await state.clear()
    await message.answer(_("Cancelled; nothing was saved."))
